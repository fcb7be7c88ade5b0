// Package bgp checks that the BIRD config flock renders interoperates with
// independent BGP implementations: a node namespace runs the real BIRD with
// the rendered config and peers over a veth with a router namespace running
// FRR (bgpd and zebra) or another BIRD. These tests need root; CI runs them
// as root.
package bgp

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fritzlab/flock/internal/testns"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/bird/birdtest"
)

// The node announces its pools; the router announces a default route,
// another node's pools, and routes the node must refuse: inside its pools
// and its connected subnet.
var (
	pool6 = netip.MustParsePrefix("2001:db8:42:1::/64")
	pool4 = netip.MustParsePrefix("198.18.1.0/24")

	nodeLink6   = netip.MustParsePrefix("2001:db8:1ab:1::2/64")
	nodeLink4   = netip.MustParsePrefix("198.19.1.2/24")
	routerLink6 = netip.MustParsePrefix("2001:db8:1ab:1::1/64")
	routerLink4 = netip.MustParsePrefix("198.19.1.1/24")

	routerAnnounces6 = []string{"2001:db8:42:2::/64", "2001:db8:42:1::/80", "2001:db8:1ab:1::/64"}
	routerAnnounces4 = []string{"198.18.2.0/24", "198.18.1.128/25", "198.19.1.0/24"}

	// What the node's kernel must get from the router, and nothing else.
	wantNodeKernel6 = []string{"2001:db8:42:2::/64 via 2001:db8:1ab:1::1 dev up0", "default via 2001:db8:1ab:1::1 dev up0"}
	wantNodeKernel4 = []string{"198.18.2.0/24 via 198.19.1.1 dev up0", "default via 198.19.1.1 dev up0"}
	// What the router's kernel must get from the node, and nothing else:
	// the pools, with the node's global link address as next hop.
	wantRouterKernel6 = []string{"2001:db8:42:1::/64 via 2001:db8:1ab:1::2 dev down0"}
	wantRouterKernel4 = []string{"198.18.1.0/24 via 198.19.1.2 dev down0"}
)

const (
	nodeASN   = 65101
	routerASN = 65000
	converge  = 60 * time.Second
)

// nodeConfig is the node's bird.conf, rendered by flock.
func nodeConfig(t *testing.T) []byte {
	t.Helper()
	conf, err := bird.Render(&bird.Config{
		ASN:       nodeASN,
		Addresses: []netip.Prefix{nodeLink6, nodeLink4, netip.MustParsePrefix("fe80::2/64")},
		Peers: []bird.Peer{
			{Address: routerLink6.Addr(), ASN: routerASN, HoldTime: 9},
			{Address: routerLink4.Addr(), ASN: routerASN, HoldTime: 9},
		},
		Pool6: pool6,
		Pool4: pool4,
	})
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// testNet is a node and a router namespace joined by a veth, up0 on the
// node and down0 on the router, with the node's BIRD running.
type testNet struct {
	node, router string
	nodeBird     *bird.Client
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	n := &testNet{node: testns.New(t, "bgp"), router: testns.New(t, "bgp")}
	testns.Run(t, "ip", "-n", n.node, "link", "add", "up0", "type", "veth", "peer", "name", "down0", "netns", n.router)
	for _, c := range []struct {
		ns, dev string
		addrs   []netip.Prefix
	}{{n.node, "up0", []netip.Prefix{nodeLink6, nodeLink4}}, {n.router, "down0", []netip.Prefix{routerLink6, routerLink4}}} {
		for _, a := range c.addrs {
			testns.Run(t, "ip", "-n", c.ns, "addr", "add", a.String(), "dev", c.dev, "nodad")
		}
		testns.Run(t, "ip", "-n", c.ns, "link", "set", c.dev, "up")
		testns.Run(t, "ip", "-n", c.ns, "link", "set", "lo", "up")
	}
	// As the agent leaves the node: blackholes for its pools, in its kernel.
	testns.Run(t, "ip", "-n", n.node, "route", "add", "blackhole", pool6.String(), "proto", "83")
	testns.Run(t, "ip", "-n", n.node, "route", "add", "blackhole", pool4.String(), "proto", "83")

	dir := tempDir(t)
	conf := filepath.Join(dir, "bird.conf")
	writeFile(t, conf, nodeConfig(t))
	n.nodeBird = birdtest.Start(t, n.node, conf, filepath.Join(dir, "bird.ctl"))
	return n
}

func TestInteropFRR(t *testing.T) {
	requireRoot(t, "bird", "/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "vtysh")
	n := newTestNet(t)
	f := startFRR(t, n.router, frrConfig())

	fromNode := func(afi string, link, pool netip.Prefix) learned {
		return learned{
			what: "FRR's " + afi + " routes from the node, prefix → global next hop",
			want: map[string]string{pool.String(): link.Addr().String()},
			get:  func() (any, error) { return f.routesFrom(afi, link.Addr().String()) },
		}
	}
	waitFor(t, converge, convergence(t, n, "bgp", fromNode("ipv6", nodeLink6, pool6), fromNode("ipv4", nodeLink4, pool4)))
}

func TestInteropBIRD(t *testing.T) {
	requireRoot(t, "bird")
	n := newTestNet(t)
	dir := tempDir(t)
	conf := filepath.Join(dir, "router.conf")
	writeFile(t, conf, []byte(routerBirdConfig()))
	r := birdtest.Start(t, n.router, conf, filepath.Join(dir, "router.ctl"))

	fromNode := func(proto string, link, pool netip.Prefix) learned {
		return learned{
			what: "router BIRD's routes from " + proto,
			want: []string{pool.String() + " next hop " + link.Addr().String()},
			get:  func() (any, error) { return birdRoutesFrom(t, r, proto) },
		}
	}
	waitFor(t, converge, convergence(t, n, "bird", fromNode("node6", nodeLink6, pool6), fromNode("node4", nodeLink4, pool4)))
}

// learned is what the router must have learned from the node in one
// family, and how to read what it has.
type learned struct {
	what string // heads the diff
	want any
	get  func() (any, error)
}

// convergence is the check waitFor polls: every learned set as wanted, and
// the routes in both kernels (see kernelDiffs).
func convergence(t *testing.T, n *testNet, routerProto string, sets ...learned) func() error {
	return func() error {
		var errs []string
		for _, s := range sets {
			got, err := s.get()
			if err != nil {
				return err
			}
			if d := cmp.Diff(s.want, got); d != "" {
				errs = append(errs, fmt.Sprintf("%s (-want +got):\n%s", s.what, d))
			}
		}
		errs = append(errs, kernelDiffs(t, n, routerProto)...)
		if len(errs) > 0 {
			return fmt.Errorf("%s", strings.Join(errs, "\n"))
		}
		return nil
	}
}

// kernelDiffs compares the routes the router's routing daemon (routerProto)
// put into the router's kernel, and those the node's BIRD put into the
// node's kernel, with what they must be.
func kernelDiffs(t *testing.T, n *testNet, routerProto string) []string {
	var errs []string
	for _, k := range []struct {
		ns, fam, proto string
		want           []string
	}{
		{n.router, "-6", routerProto, wantRouterKernel6},
		{n.router, "-4", routerProto, wantRouterKernel4},
		{n.node, "-6", "bird", wantNodeKernel6},
		{n.node, "-4", "bird", wantNodeKernel4},
	} {
		got := kernelRoutes(t, k.ns, k.fam, k.proto)
		if d := cmp.Diff(k.want, got); d != "" {
			errs = append(errs, fmt.Sprintf("ip %s -n %s route show proto %s (-want +got):\n%s", k.fam, k.ns, k.proto, d))
		}
	}
	return errs
}

// kernelRoutes lists a namespace's routes of one protocol as "PREFIX via
// GW dev DEV", sorted.
func kernelRoutes(t *testing.T, ns, fam, proto string) []string {
	var out []string
	for _, l := range strings.Split(testns.Run(t, "ip", fam, "-n", ns, "route", "show", "proto", proto), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		var keep []string
		for i := 0; i < len(f); i++ {
			switch f[i] {
			case "nhid", "metric", "proto", "pref":
				i++ // drop the word and its value
			default:
				keep = append(keep, f[i])
			}
		}
		out = append(out, strings.Join(keep, " "))
	}
	slices.Sort(out)
	return out
}

// waitFor polls check until it returns nil, failing with its last error
// after timeout.
func waitFor(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged after %v:\n%v", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// frrConfig is the router's bgpd config: a session per family to the node,
// announcing a default route and routerAnnounces. The inbound route-map
// prefers the global next hop, so that the kernel route shows it (FRR
// otherwise installs the link-local one BIRD sends beside it).
func frrConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, `hostname router
router bgp %d
 bgp router-id %s
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 no bgp network import-check
 neighbor %s remote-as %d
 neighbor %s timers 3 9
 neighbor %s remote-as %d
 neighbor %s timers 3 9
 address-family ipv6 unicast
  neighbor %s activate
  neighbor %s default-originate
  neighbor %s route-map prefer-global in
`, routerASN, routerLink4.Addr(), nodeLink6.Addr(), nodeASN, nodeLink6.Addr(), nodeLink4.Addr(), nodeASN, nodeLink4.Addr(),
		nodeLink6.Addr(), nodeLink6.Addr(), nodeLink6.Addr())
	for _, p := range routerAnnounces6 {
		fmt.Fprintf(&b, "  network %s\n", p)
	}
	fmt.Fprintf(&b, ` exit-address-family
 address-family ipv4 unicast
  neighbor %s activate
  neighbor %s default-originate
`, nodeLink4.Addr(), nodeLink4.Addr())
	for _, p := range routerAnnounces4 {
		fmt.Fprintf(&b, "  network %s\n", p)
	}
	b.WriteString(` exit-address-family
route-map prefer-global permit 10
 set ipv6 next-hop prefer-global
`)
	return b.String()
}

// routerBirdConfig is the router's bird.conf: a session per family to the
// node, announcing a default route and routerAnnounces, and installing only
// what it learns over BGP into its kernel.
func routerBirdConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, "log stderr all;\nrouter id %s;\nprotocol device {}\n", routerLink4.Addr())
	for _, fam := range []struct {
		v           int
		local, peer netip.Addr
		announce    []string
		def         string
	}{
		{6, routerLink6.Addr(), nodeLink6.Addr(), routerAnnounces6, "::/0"},
		{4, routerLink4.Addr(), nodeLink4.Addr(), routerAnnounces4, "0.0.0.0/0"},
	} {
		fmt.Fprintf(&b, "protocol kernel { ipv%d { import none; export where source = RTS_BGP; }; }\n", fam.v)
		fmt.Fprintf(&b, "protocol static announce%d { ipv%d;\n route %s blackhole;\n", fam.v, fam.v, fam.def)
		for _, p := range fam.announce {
			fmt.Fprintf(&b, " route %s blackhole;\n", p)
		}
		fmt.Fprintf(&b, "}\nprotocol bgp node%d {\n local %s as %d;\n neighbor %s as %d;\n hold time 9;\n graceful restart on;\n"+
			" ipv%d { import all; export where proto = \"announce%d\"; };\n}\n",
			fam.v, fam.local, routerASN, fam.peer, nodeASN, fam.v, fam.v)
	}
	return b.String()
}

// birdRoutesFrom lists the routes a BIRD learned from one protocol, as
// "PREFIX next hop ADDR" with the first (global) BGP next hop, sorted.
func birdRoutesFrom(t *testing.T, c *bird.Client, proto string) ([]string, error) {
	lines, err := c.Command(t.Context(), "show route all protocol "+proto)
	if err != nil {
		return nil, err
	}
	var out []string
	prefix := ""
	for _, l := range lines {
		switch f := strings.Fields(l.Text); {
		case l.Code == 1007 && len(f) > 0 && !strings.HasPrefix(l.Text, " ") && !strings.HasPrefix(l.Text, "\t"):
			if _, err := netip.ParsePrefix(f[0]); err == nil {
				prefix = f[0]
			}
		case l.Code == 1012 && len(f) >= 2 && f[0] == "BGP.next_hop:":
			out = append(out, prefix+" next hop "+f[1])
		}
	}
	slices.Sort(out)
	return out, nil
}

// frr is an FRR instance (zebra and bgpd) in a namespace.
type frr struct{ ns string }

// routesFrom returns the routes FRR learned from peer in one family, each
// prefix with its global next hop.
func (f *frr) routesFrom(afi, peer string) (map[string]string, error) {
	out, err := run("vtysh", "-N", f.ns, "-c", "show bgp "+afi+" unicast json")
	if err != nil {
		return nil, err
	}
	var table struct {
		Routes map[string][]struct {
			PeerID   string `json:"peerId"`
			Nexthops []struct {
				IP    string `json:"ip"`
				Scope string `json:"scope"`
			} `json:"nexthops"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(out), &table); err != nil {
		return nil, fmt.Errorf("vtysh show bgp %s unicast json: %w: %s", afi, err, out)
	}
	got := map[string]string{}
	for prefix, paths := range table.Routes {
		for _, p := range paths {
			if p.PeerID != peer {
				continue
			}
			got[prefix] = "no global next hop"
			for _, nh := range p.Nexthops {
				if nh.Scope == "global" || (afi == "ipv4" && nh.Scope == "") {
					got[prefix] = nh.IP
				}
			}
		}
	}
	return got, nil
}
