package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fritzlab/flock/internal/testns"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/bird/birdtest"
)

// The node's uplink leads to a router (absent) at peer6 and peer4.
var (
	peer6 = netip.MustParseAddr(birdtest.Router6)
	peer4 = netip.MustParseAddr(birdtest.Router4)
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
	n := newNode(t)
	birdtest.Uplink(t, n.NS.Name)
	b := birdtest.StartSidecar(t, n.NS.Name, n.Dir)
	n.AgentArgs = b.AgentArgs()
	if err := n.StartAgent(); err != nil {
		t.Fatal(err)
	}

	sessions := func() []string { return birdtest.Sessions(t, b.Client) }
	want := []string{bird.PeerName(peer4), bird.PeerName(peer6)}
	if got := sessions(); len(got) != 0 {
		t.Fatalf("BGP protocols %v before the NodeConfig has spec.bgp", got)
	}

	if err := n.WriteNodeConfig(nodeConfigBGP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the BGP protocols of both peers", func() bool { return slices.Equal(sessions(), want) })
	for proto, pool := range map[string]netip.Prefix{"static6": pool6, "static4": pool4} {
		lines, err := b.Client.Command(ctx(t), "show route protocol "+proto)
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

// Peers written as the node's default gateway: the agent reads the
// node's default routes and BIRD peers with their gateways; with the
// routes moved, the sessions follow on the next resync.
func TestAgentPeersWithDefaultGateway(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("needs bird: apt-get install -y bird2 (CI installs it)")
	}
	n := newNode(t)
	birdtest.Uplink(t, n.NS.Name)
	testns.Run(t, "ip", "-n", n.NS.Name, "-6", "route", "add", "default", "via", peer6.String())
	testns.Run(t, "ip", "-n", n.NS.Name, "route", "add", "default", "via", peer4.String())
	b := birdtest.StartSidecar(t, n.NS.Name, n.Dir)
	n.AgentArgs = b.AgentArgs()
	if err := n.StartAgent(); err != nil {
		t.Fatal(err)
	}
	if err := n.WriteNodeConfig(nodeConfig + `  bgp:
    asn: 65101
    peers:
      - address: default-gateway-ipv6
        asn: 65000
      - address: default-gateway-ipv4
        asn: 65000
`); err != nil {
		t.Fatal(err)
	}
	want := []string{bird.PeerName(peer4), bird.PeerName(peer6)}
	waitUntil(t, "the BGP protocols of both default gateways", func() bool {
		return slices.Equal(birdtest.Sessions(t, b.Client), want)
	})
	conf, err := os.ReadFile(b.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{peer6, peer4} {
		if !strings.Contains(string(conf), "neighbor "+a.String()+" ") {
			t.Errorf("bird.conf has no neighbor %s:\n%s", a, conf)
		}
	}
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
