package e2e

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/pkg/bird"
)

// The node's uplink: the (absent) router is peer6 and peer4.
var (
	peer6 = netip.MustParseAddr("2001:db8:f10c:ff::1")
	peer4 = netip.MustParseAddr("192.0.2.1")
)

const nodeConfigBGP = nodeConfig + `  bgp:
    asn: 65101
    peers:
      - address: 2001:db8:f10c:ff::1
        asn: 65000
        holdTime: 9
        communities: ["65000:42"]
      - address: 192.0.2.1
        asn: 65000
        gracefulRestart: false
`

// The real agent, in file mode, drives a real BIRD in the node's namespace:
// a NodeConfig with spec.bgp brings up one BGP protocol per peer and the
// pools as static routes; without spec.bgp, the sessions go away.
func TestAgentDrivesBird(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("needs bird: apt-get install -y bird2 (CI installs it)")
	}
	n, err := cnitest.NewNode(binDir, t.TempDir(), nodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", n.AgentLog())
		}
		n.Close()
	})
	for _, args := range [][]string{
		{"ip", "link", "add", "uplink", "type", "veth", "peer", "name", "router"},
		{"ip", "link", "set", "uplink", "up"},
		{"ip", "link", "set", "router", "up"},
		{"ip", "addr", "add", "2001:db8:f10c:ff::2/64", "dev", "uplink", "nodad"},
		{"ip", "addr", "add", "192.0.2.2/24", "dev", "uplink"},
	} {
		if _, err := n.NS.Run(args...); err != nil {
			t.Fatal(err)
		}
	}

	conf, sock := filepath.Join(n.Dir, "bird.conf"), filepath.Join(n.Dir, "bird.ctl")
	if err := os.WriteFile(conf, bird.RenderBootstrap(), 0o644); err != nil {
		t.Fatal(err)
	}
	birdc := startBird(t, n.NS, conf, sock)
	n.AgentArgs = []string{"--bird-config", conf, "--bird-socket", sock}
	if err := n.StartAgent(); err != nil {
		t.Fatal(err)
	}

	sessions := func() []string {
		ps, err := birdc.Protocols(ctx(t))
		if err != nil {
			t.Fatalf("show protocols: %v", err)
		}
		var names []string
		for _, p := range ps {
			if p.Proto == "BGP" {
				names = append(names, p.Name)
			}
		}
		slices.Sort(names)
		return names
	}
	want := []string{bird.PeerName(peer4), bird.PeerName(peer6)}
	if got := sessions(); len(got) != 0 {
		t.Fatalf("BGP protocols %v before the NodeConfig has spec.bgp", got)
	}

	if err := n.WriteNodeConfig(nodeConfigBGP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the BGP protocols of both peers", func() bool { return slices.Equal(sessions(), want) })
	for proto, pool := range map[string]netip.Prefix{"static6": pool6, "static4": pool4} {
		lines, err := birdc.Command(ctx(t), "show route protocol "+proto)
		if err != nil {
			t.Fatalf("show route protocol %s: %v", proto, err)
		}
		if !hasLine(lines, pool.String()) {
			t.Errorf("show route protocol %s lacks %s: %v", proto, pool, lines)
		}
	}
	if log := n.AgentLog(); !strings.Contains(log, `msg="bird reloaded"`) || !strings.Contains(log, `msg="bgp configured"`) {
		t.Errorf("the agent did not log the reload and the configured BGP")
	}

	if err := n.WriteNodeConfig(nodeConfig); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the BGP protocols gone", func() bool { return len(sessions()) == 0 })
}

// startBird runs bird in ns (as the DaemonSet's sidecar does, with -R so a
// restart keeps its kernel routes) and returns a client once its control
// socket answers; it is killed when the test ends.
func startBird(t *testing.T, ns *cnitest.Netns, conf, sock string) *bird.Client {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "bird", "-f", "-R", "-c", conf, "-s", sock,
		"-P", filepath.Join(filepath.Dir(sock), "bird.pid"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("bird's log:\n%s", out.String())
		}
	})
	c := bird.NewClient(sock)
	waitUntil(t, "bird's control socket", func() bool {
		_, err := c.Command(context.Background(), "show status")
		return err == nil
	})
	return c
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasLine(lines []bird.Line, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l.Text, prefix+" ") {
			return true
		}
	}
	return false
}
