package bird_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fritzlab/flock/internal/testns"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/bird/birdtest"
)

// The real-BIRD test runs bird in a fresh network namespace and drives it
// through the Reloader and the Client as the agent does. It is a package of
// its own so that it can start BIRD with birdtest, which imports bird.

func requireRootAndBird(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create network namespaces (CI runs it as root)")
	}
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("bird not installed: apt-get install -y bird2 (CI installs it)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("kernel test needs ip: apt-get install -y iproute2")
	}
}

func show(t *testing.T, c *bird.Client, cmd string) string {
	t.Helper()
	lines, err := c.Command(t.Context(), cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text + "\n")
	}
	return b.String()
}

// waitInSync waits until the Reloader has BIRD run its latest config.
func waitInSync(t *testing.T, r *bird.Reloader) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for st := r.Status(); !st.InSync; st = r.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("not in sync after 10 s: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReloaderRealBird(t *testing.T) {
	requireRootAndBird(t)
	ns := testns.New(t, "bird")
	testns.Run(t, "ip", "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
	testns.Run(t, "ip", "-n", ns, "link", "set", "up0p", "up")
	testns.Run(t, "ip", "-n", ns, "addr", "add", "2001:db8:1ab:1::2/64", "dev", "up0", "nodad")
	testns.Run(t, "ip", "-n", ns, "addr", "add", "198.19.1.2/24", "dev", "up0")
	testns.Run(t, "ip", "-n", ns, "link", "set", "up0", "up")
	// The agent's pool blackhole, which BIRD learns.
	testns.Run(t, "ip", "-n", ns, "route", "add", "blackhole", "10.42.1.0/24", "proto", "83")

	// The agent's directory and file modes (the config holds the MD5
	// passwords), read by a BIRD with only the sidecar's capabilities: it
	// must still read the config, the agent's user being its own.
	dir := filepath.Join(t.TempDir(), "bird")
	path, sock := filepath.Join(dir, "bird.conf"), filepath.Join(dir, "bird.ctl")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := bird.PrepareDir(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bird.RenderBootstrap(), bird.ConfigMode); err != nil {
		t.Fatal(err)
	}
	c := birdtest.StartConfined(t, ns, path, sock)
	if p := show(t, c, "show protocols"); strings.Contains(p, "BGP") || !strings.Contains(p, "kernel6") {
		t.Errorf("bootstrap protocols:\n%s", p)
	}

	r := bird.NewReloader(path, c)
	r.Log = slog.New(slog.NewTextHandler(io.Discard, nil)) // Status is checked instead
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	cfg := &bird.Config{
		ASN:       65101,
		Addresses: []netip.Prefix{pfx("2001:db8:1ab:1::2/64"), pfx("198.19.1.2/24")},
		// Nobody at 2001:db8:1ab:1::1: the session stays down.
		Peers: []bird.Peer{{Address: netip.MustParseAddr("2001:db8:1ab:1::1"), ASN: 65000}},
		Pool6: pfx("2001:db8:42:1::/64"),
		Pool4: pfx("10.42.1.0/24"),
	}
	apply := func() {
		t.Helper()
		conf, err := bird.Render(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.Apply(conf)
		waitInSync(t, r)
	}
	apply()
	for p, want := range map[string]os.FileMode{dir: bird.DirMode, path: bird.ConfigMode} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
	protos, routes := show(t, c, "show protocols"), show(t, c, "show route")
	for _, want := range []string{"bgp6_2001_db8_1ab_1__1", "static6", "static4"} {
		if !strings.Contains(protos, want) {
			t.Errorf("after the first config, no %s in show protocols:\n%s", want, protos)
		}
	}
	for _, want := range []string{"2001:db8:42:1::/64", "10.42.1.0/24"} {
		if !strings.Contains(routes, want) {
			t.Errorf("after the first config, no %s in show route:\n%s", want, routes)
		}
	}
	ps, err := c.Protocols(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(ps, func(p bird.Protocol) bool { return p.Name == "bgp6_2001_db8_1ab_1__1" }); i < 0 ||
		ps[i].Proto != "BGP" || ps[i].Established() {
		t.Errorf("Protocols() = %+v, want the IPv6 session, not established", ps)
	}
	// The static blackholes never reach the kernel.
	for _, fam := range []string{"-6", "-4"} {
		if out := testns.Run(t, "ip", fam, "-n", ns, "route", "show", "proto", "bird"); strings.TrimSpace(out) != "" {
			t.Errorf("bird put routes into the kernel (%s):\n%s", fam, out)
		}
	}

	// Move the IPv6 pool and the session to IPv4.
	cfg.Pool6 = pfx("2001:db8:42:2::/64")
	cfg.Peers = []bird.Peer{{Address: netip.MustParseAddr("198.19.1.1"), ASN: 65000}}
	apply()
	protos, routes = show(t, c, "show protocols"), show(t, c, "show route")
	if !strings.Contains(protos, "bgp4_198_19_1_1") || strings.Contains(protos, "bgp6_") {
		t.Errorf("after the second config, want only the IPv4 session:\n%s", protos)
	}
	if !strings.Contains(routes, "2001:db8:42:2::/64") || strings.Contains(routes, "2001:db8:42:1::/64") {
		t.Errorf("after the second config, want the new IPv6 pool only:\n%s", routes)
	}
	if st := r.Status(); st.Reloads != 2 || st.Err != nil {
		t.Errorf("Status = %+v, want two reloads", st)
	}

	// A config BIRD refuses: reported, and BIRD keeps running the last one.
	good, _ := os.ReadFile(path)
	r.Apply([]byte("protocol nonsense {\n"))
	deadline := time.Now().Add(10 * time.Second)
	for r.Status().Err == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.Status().Err; err == nil || !strings.Contains(err.Error(), "bird refuses the config") {
		t.Errorf("Status().Err = %v, want BIRD's refusal", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, good) {
		t.Errorf("a refused config replaced %s:\n%s", path, now)
	}
	if protos := show(t, c, "show protocols"); !strings.Contains(protos, "bgp4_198_19_1_1") {
		t.Errorf("after a refused config, BIRD lost its session:\n%s", protos)
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
