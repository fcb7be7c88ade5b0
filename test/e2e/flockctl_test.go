package e2e

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/admin"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/bird/birdtest"
)

// The real flockctl against the real agent's admin socket (file mode, pods
// added through the real plugin): the pods with their addresses, the pools,
// the anycast route, and with BIRD installed the BGP sessions.
func TestFlockctl(t *testing.T) {
	requireRoot(t)
	n := newNode(t)
	_, err := exec.LookPath("bird")
	withBird := err == nil
	if withBird {
		birdtest.Uplink(t, n.NS.Name)
		b := birdtest.StartSidecar(t, n.NS.Name, n.Dir)
		n.AgentArgs = b.AgentArgs()
		if err := n.WriteNodeConfig(nodeConfigBGP); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Log("bird not installed: flockctl bgp not covered (apt-get install -y bird2)")
	}
	anycast := netip.MustParseAddr("2001:db8:ffff::53")
	if err := n.WritePod("default", "web", "", map[string]string{"flock.fritzlab.net/anycast": anycast.String()}); err != nil {
		t.Fatal(err)
	}
	if err := n.StartAgent(); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(n.Dir, "admin.sock") // beside the CNI socket, the default
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("admin socket %s: %v, %v; want a socket of mode 0600", sock, fi, err)
	}

	flockctl := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(filepath.Join(binDir, "flockctl"), append(args, "--socket", sock)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			err = errors.Join(err, errors.New(stderr.String()))
		}
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := flockctl(args...)
		if err != nil {
			t.Fatalf("flockctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	l := conflist(t, n)
	web, db := newPod(t, "default", "web"), newPod(t, "default", "db")
	add(t, n, l, web)
	add(t, n, l, db)

	out := must("pods")
	t.Logf("flockctl pods:\n%s", out)
	for _, p := range []struct {
		name string
		pod  *pod
	}{{"web", web}, {"db", db}} {
		v6, v4 := p.pod.addrs()
		if !hasRow(out, "default", p.name, v6.String(), v4.String()) {
			t.Errorf("flockctl pods lacks default/%s with %s and %s", p.name, v6, v4)
		}
	}
	if !hasRow(out, "web", anycast.String()) {
		t.Errorf("flockctl pods does not show web's anycast address %s", anycast)
	}

	var allocs admin.Allocations
	if err := json.Unmarshal([]byte(must("pods", "-o", "json")), &allocs); err != nil {
		t.Fatalf("flockctl pods -o json: %v", err)
	}
	if len(allocs.Items) != 2 {
		t.Errorf("pods -o json: %d items, want 2", len(allocs.Items))
	}
	for _, a := range allocs.Items {
		p := map[string]*pod{"web": web, "db": db}[a.Name]
		if p == nil || a.ContainerID != p.rt.ContainerID || a.IfName != "eth0" || !strings.HasPrefix(a.HostIface, "flock") {
			t.Errorf("allocation %+v does not match a pod added", a)
			continue
		}
		if v6, v4 := p.addrs(); a.IPv6 != v6 || a.IPv4 != v4 {
			t.Errorf("%s: %s %s in flockctl, %s %s in the ADD result", a.Name, a.IPv6, a.IPv4, v6, v4)
		}
	}

	out = must("status")
	t.Logf("flockctl status:\n%s", out)
	for _, want := range []string{
		"Node:          e2e-node (file mode)",
		"ipv6 " + pool6.String() + ", 2 allocated",
		"ipv4 " + pool4.String() + ", 2 allocated",
		"Allocations:   2",
		"NetworkPolicy: off",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("flockctl status lacks %q", want)
		}
	}
	var st admin.Status
	if err := json.Unmarshal([]byte(must("status", "-o", "json")), &st); err != nil || !st.Configured || len(st.Pools) != 2 {
		t.Errorf("flockctl status -o json: %+v, %v", st, err)
	}

	// File mode has no readiness: web counts as Ready, so its address is
	// routed (and announced when BIRD runs).
	announced := "no"
	if withBird {
		announced = "yes"
	}
	waitUntil(t, "flockctl anycast to show the route", func() bool {
		out, err := flockctl("anycast")
		return err == nil && hasRow(out, anycast.String(), "yes", announced, "default/web")
	})
	t.Logf("flockctl anycast:\n%s", must("anycast"))

	if withBird {
		// No router answers: the sessions exist, not established.
		waitUntil(t, "flockctl bgp to list both peers' sessions", func() bool {
			out, err := flockctl("bgp")
			return err == nil && hasRow(out, peer6.String(), "65000", bird.PeerName(peer6)) && hasRow(out, peer4.String(), "65000", bird.PeerName(peer4)) &&
				!strings.Contains(out, admin.StateMissing)
		})
		out := must("bgp")
		t.Logf("flockctl bgp:\n%s", out)
		if !strings.Contains(out, "Local AS 65101") {
			t.Errorf("flockctl bgp lacks the local AS")
		}
		if out := must("status"); !strings.Contains(out, "BGP:           0/2 sessions established") {
			t.Errorf("flockctl status, BGP line:\n%s", out)
		}
	}

	if out := must("policy"); !strings.Contains(out, "NetworkPolicy is off") {
		t.Errorf("flockctl policy in file mode: %s", out)
	}

	n.StopAgent(false)
	out, err = flockctl("status")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 || !strings.Contains(err.Error(), "flockctl: cannot reach the agent at "+sock) {
		t.Errorf("flockctl status without an agent: %v, output %q", err, out)
	}
}

// hasRow says whether a line of a table has all the cells, in order.
func hasRow(table string, cells ...string) bool {
	for line := range strings.Lines(table) {
		f, i := strings.Fields(line), 0
		for _, c := range f {
			if i < len(cells) && c == cells[i] {
				i++
			}
		}
		if i == len(cells) {
			return true
		}
	}
	return false
}
