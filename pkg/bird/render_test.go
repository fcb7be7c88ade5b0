package bird

import (
	"bytes"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fritzlab/flock/internal/golden"
	"github.com/google/go-cmp/cmp"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

// typicalNode is a dual-stack node with one router reachable over IPv6 and
// IPv4 on its uplink: the shape of SPEC.md's NodeConfig example.
func typicalNode() *Config {
	return &Config{
		ASN: 65101,
		Addresses: []netip.Prefix{
			pfx("2001:db8:1ab:1::2/64"), pfx("fe80::2/64"), pfx("198.19.1.2/24"),
			pfx("127.0.0.1/8"), pfx("::1/128"),
			pfx("10.42.1.1/32"), // the IPv4 pool's gateway on lo
		},
		Peers: []Peer{
			{Address: addr("2001:db8:1ab:1::1"), ASN: 65000},
			{Address: addr("198.19.1.1"), ASN: 65000},
		},
		Pool6: pfx("2001:db8:42:1::/64"),
		Pool4: pfx("10.42.1.0/24"),
	}
}

// goldens are the rendered configs kept in testdata/NAME.conf.
func goldens(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{"bootstrap": RenderBootstrap()}
	render := func(name string, c *Config) {
		b, err := Render(c)
		if err != nil {
			t.Fatalf("%s: Render: %v", name, err)
		}
		out[name] = b
	}
	render("typical", typicalNode())

	c := typicalNode()
	c.Peers = nil
	render("no-peers", c)

	// Everything an operator can ask for, on two routers per family, with an
	// iBGP route reflector reached over two hops and two anycast addresses.
	c = typicalNode()
	c.RouterID = addr("192.0.2.10")
	c.Addresses = append(c.Addresses, pfx("2001:db8:1ab:2::2/64"), pfx("198.19.2.2/24"))
	c.Peers = []Peer{
		{Address: addr("2001:db8:1ab:1::1"), ASN: 65000, BFD: true, HoldTime: 9, RestartTime: 300,
			Password: `s3cr3t pass!{};'#`, Communities: []Community{{65000, 100}, {65101, 1}},
			LargeCommunities: []LargeCommunity{{4200000000, 1, 2}}},
		{Address: addr("2001:db8:1ab:2::1"), ASN: 65000, BFD: true, DisableGracefulRestart: true},
		{Address: addr("198.19.1.1"), ASN: 4200000000, HoldTime: 30},
		{Address: addr("2001:db8:ffff:ff::1"), ASN: 65101, Multihop: 2,
			SourceAddress: addr("2001:db8:1ab:1::2")},
	}
	c.Anycast = []netip.Addr{addr("2001:db8:ffff::53"), addr("192.0.2.53"), addr("2001:db8:ffff::53")}
	render("full", c)

	// A node whose pools moved: the old ones still hold pods, so they stay
	// announced and owned until drained (listed twice, and the current
	// pool once more, which renders once).
	c = typicalNode()
	c.Draining = []netip.Prefix{pfx("2001:db8:41:1::/64"), pfx("10.41.1.0/24"), pfx("2001:db8:41:1::/64"), pfx("2001:db8:42:1::/64")}
	render("draining", c)

	// LoadBalancer Service addresses of both families, with their pools'
	// communities (one listed twice, one also an anycast address), under a
	// peer that adds its own.
	c = typicalNode()
	c.Peers[0].Communities = []Community{{65000, 100}}
	c.Anycast = []netip.Addr{addr("2001:db8:5::53")}
	c.Services = []ServiceRoute{
		{Addr: addr("2001:db8:5::10"), Communities: []Community{{65000, 5}}, LargeCommunities: []LargeCommunity{{4200000000, 5, 1}}},
		{Addr: addr("192.0.2.10"), Communities: []Community{{65000, 4}}},
		{Addr: addr("2001:db8:5::11")},
		{Addr: addr("2001:db8:5::10"), Communities: []Community{{65000, 5}}, LargeCommunities: []LargeCommunity{{4200000000, 5, 1}}},
		{Addr: addr("2001:db8:5::53"), Communities: []Community{{65000, 6}}},
	}
	render("services", c)

	// An IPv6-only node: the router id must be given.
	render("ipv6-only", &Config{
		RouterID:  addr("10.255.0.1"),
		ASN:       4200000001,
		Addresses: []netip.Prefix{pfx("2001:db8:1ab:1::2/64")},
		Peers:     []Peer{{Address: addr("2001:db8:1ab:1::1"), ASN: 65000}},
		Pool6:     pfx("2001:db8:42:1::/64"),
		Anycast:   []netip.Addr{addr("2001:db8:ffff::80")},
	})
	return out
}

func TestGolden(t *testing.T) {
	for name, got := range goldens(t) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name+".conf")
			golden.Check(t, path, "rendered config", got)
			birdParse(t, path)
		})
	}
}

// birdParse checks a config file with the real BIRD, the only judge of
// what BIRD accepts. It skips when bird is not installed; CI installs it.
func birdParse(t testing.TB, path string) {
	t.Helper()
	bin := birdBinary(t)
	out, err := exec.Command(bin, "-p", "-c", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("bird -p -c %s: %v: %s", path, err, out)
	}
}

func birdBinary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("bird")
	if err != nil {
		t.Skip("bird not installed, so rendered configs are not checked by BIRD: apt-get install -y bird2 (CI installs it)")
	}
	return bin
}

// TestRenderDraining: a draining pool is announced (a static blackhole in
// the export list) and rejected from the peers with everything inside it,
// exactly as the pool is; without it, it is gone.
func TestRenderDraining(t *testing.T) {
	c := typicalNode()
	c.Draining = []netip.Prefix{pfx("2001:db8:41:1::/64"), pfx("10.41.1.0/24")}
	b, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"route 2001:db8:41:1::/64 blackhole;", "route 10.41.1.0/24 blackhole;",
		`net ~ [ 2001:db8:42:1::/64, 2001:db8:41:1::/64 ]`, `net ~ [ 10.42.1.0/24, 10.41.1.0/24 ]`,
		`if net ~ [ 2001:db8:42:1::/64+, 2001:db8:41:1::/64+ ] then reject;`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("config lacks %q:\n%s", want, b)
		}
	}
	c.Draining = nil
	if b, err = Render(c); err != nil || strings.Contains(string(b), "2001:db8:41:1::") || strings.Contains(string(b), "10.41.1.0") {
		t.Errorf("drained pool still in the config (%v):\n%s", err, b)
	}
	for _, bad := range []netip.Prefix{{}, pfx("2001:db8:41:1::1/64"), pfx("::ffff:10.0.0.0/104")} {
		c.Draining = []netip.Prefix{bad}
		if _, err := Render(c); err == nil || !strings.Contains(err.Error(), "draining[0]") {
			t.Errorf("draining %v: err %v, want one naming draining[0]", bad, err)
		}
	}
}

func TestRenderContent(t *testing.T) {
	b, err := Render(typicalNode())
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, want := range []string{
		"router id 198.19.1.2;", // lowest uplink IPv4, not the pool gateway
		"local 2001:db8:1ab:1::2 as 65101;\n\tneighbor 2001:db8:1ab:1::1 as 65000;",
		"local 198.19.1.2 as 65101;\n\tneighbor 198.19.1.1 as 65000;",
		"route 2001:db8:42:1::/64 blackhole;", "route 10.42.1.0/24 blackhole;",
		`return proto = "static6" && net ~ [ 2001:db8:42:1::/64 ];`,
		"if net ~ [ 2001:db8:42:1::/64+ ] then reject;",
		"if net ~ [ 2001:db8:1ab:1::/64 ] then reject;",
		"if net ~ [ 198.19.1.0/24 ] then reject;", // 10.42.1.1/32 is inside the pool
		"export where source = RTS_BGP;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("rendered config lacks %q:\n%s", want, conf)
		}
	}
	for _, bad := range []string{"fe80::2", "127.0.0.1", "protocol direct", "protocol bfd", "password"} {
		if strings.Contains(conf, bad) {
			t.Errorf("rendered config has %q:\n%s", bad, conf)
		}
	}
	// Each session carries the family of its neighbour, and sends next hop
	// self there.
	for _, block := range strings.Split(conf, "protocol bgp ")[1:] {
		v6, v4 := strings.Contains(block, "ipv6 {"), strings.Contains(block, "ipv4 {")
		if v6 == v4 || !strings.Contains(block, "next hop self;") || !strings.Contains(block, "graceful restart on;") {
			t.Errorf("session block wants one channel with next hop self and graceful restart:\n%s", block)
		}
	}
}

func TestRenderPeerOrder(t *testing.T) {
	c := typicalNode()
	a, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	c.Peers[0], c.Peers[1] = c.Peers[1], c.Peers[0]
	c.Addresses[0], c.Addresses[2] = c.Addresses[2], c.Addresses[0]
	b, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(a), string(b)); d != "" {
		t.Errorf("reordering peers and addresses changed the config:\n%s", d)
	}
}

func TestRenderRejectsInvalid(t *testing.T) {
	c := typicalNode()
	c.Peers[1].Password = "a\"; }"
	if out, err := Render(c); err == nil || out != nil {
		t.Fatalf("Render of a config with a bad password = %q, %v; want an error", out, err)
	}
}

// TestRenderServices: a Service address is a static route carrying its
// pool's communities, announced and rejected from the peers like anycast;
// a bad one is an error naming it.
func TestRenderServices(t *testing.T) {
	c := typicalNode()
	c.Services = []ServiceRoute{{Addr: addr("192.0.2.10"), Communities: []Community{{65000, 4}}}}
	b, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"route 192.0.2.10/32 blackhole { bgp_community.add((65000, 4)); };",
		`net ~ [ 10.42.1.0/24, 192.0.2.10/32 ]`,
		`if net ~ [ 10.42.1.0/24+, 192.0.2.10/32 ] then reject;`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("config lacks %q:\n%s", want, b)
		}
	}
	for _, bad := range []netip.Addr{{}, addr("fe80::1"), addr("::ffff:192.0.2.1"), addr("224.0.0.1")} {
		c.Services = []ServiceRoute{{Addr: bad}}
		if _, err := Render(c); err == nil || !strings.Contains(err.Error(), "services[0]") {
			t.Errorf("service %v: err %v, want one naming services[0]", bad, err)
		}
	}
}

func TestPeerName(t *testing.T) {
	for a, want := range map[string]string{
		"2001:db8:1ab:1::1": "bgp6_2001_db8_1ab_1__1",
		"198.19.1.1":        "bgp4_198_19_1_1",
	} {
		if got := PeerName(addr(a)); got != want {
			t.Errorf("PeerName(%s) = %s, want %s", a, got, want)
		}
	}
}
