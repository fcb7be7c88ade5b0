package routing

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/model"
)

var (
	addr   = netip.MustParseAddr
	prefix = netip.MustParsePrefix
)

// node is a node with two peers on its uplink subnets, the second using
// every per-peer option.
func node() *model.Node {
	return &model.Node{
		Name: "host001", Generation: 3,
		Pool6: prefix("2001:db8:42:1::/64"), Pool4: prefix("10.42.1.0/24"),
		BGP: &model.BGP{ASN: 65101, Peers: []model.Peer{
			{Address: addr("2001:db8:1ab:1::1"), ASN: 65000, GracefulRestart: true},
			{
				Address: addr("198.19.1.1"), ASN: 65000, SourceAddress: addr("198.19.1.2"),
				BFD: true, HoldTime: 9, GracefulRestart: false, RestartTime: 30, Multihop: 2,
				Password:         &model.SecretRef{Name: "bgp", Key: "router"},
				Communities:      []model.Community{{ASN: 65000, Value: 7}},
				LargeCommunities: []model.LargeCommunity{{Global: 65000, Data1: 1, Data2: 2}},
			},
		}},
	}
}

var uplinks = []netip.Prefix{prefix("2001:db8:1ab:1::2/64"), prefix("198.19.1.2/24")}

func TestBirdConfig(t *testing.T) {
	got := BirdConfig(node(), uplinks, []netip.Addr{addr("2001:db8:ffff::1")}, nil, nil,
		map[model.SecretRef]string{{Name: "bgp", Key: "router"}: "s3cret"})
	want := &bird.Config{
		ASN: 65101, Addresses: uplinks,
		Pool6: prefix("2001:db8:42:1::/64"), Pool4: prefix("10.42.1.0/24"),
		Anycast: []netip.Addr{addr("2001:db8:ffff::1")},
		Peers: []bird.Peer{
			{Address: addr("2001:db8:1ab:1::1"), ASN: 65000},
			{
				Address: addr("198.19.1.1"), ASN: 65000, SourceAddress: addr("198.19.1.2"),
				BFD: true, HoldTime: 9, DisableGracefulRestart: true, RestartTime: 30, Multihop: 2,
				Password:         "s3cret",
				Communities:      []bird.Community{{ASN: 65000, Value: 7}},
				LargeCommunities: []bird.LargeCommunity{{Global: 65000, Data1: 1, Data2: 2}},
			},
		},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Errorf("BirdConfig (-want +got):\n%s", diff)
	}
}

func TestRender(t *testing.T) {
	for _, n := range []*model.Node{nil, {Name: "host001", Pool6: prefix("2001:db8:42:1::/64")}} {
		conf, err := Render(n, uplinks, nil, nil, nil, nil)
		if err != nil || string(conf) != string(bird.RenderBootstrap()) {
			t.Errorf("node %+v: %v; want the bootstrap config", n, err)
		}
	}

	conf, err := Render(node(), uplinks, []netip.Addr{addr("2001:db8:ffff::1")}, nil, nil,
		map[model.SecretRef]string{{Name: "bgp", Key: "router"}: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"protocol bgp bgp6_2001_db8_1ab_1__1", "local 2001:db8:1ab:1::2 as 65101;",
		"protocol bgp bgp4_198_19_1_1", `password "s3cret";`, "bfd on;", "multihop 2;",
		"route 2001:db8:42:1::/64 blackhole;", "route 2001:db8:ffff::1/128 blackhole;",
		"bgp_community.add((65000, 7));", "router id 198.19.1.2;",
	} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("rendered config lacks %q:\n%s", want, conf)
		}
	}
	// The real parser takes it, where there is one (CI installs bird2).
	if _, err := exec.LookPath("bird"); err == nil {
		f := filepath.Join(t.TempDir(), "bird.conf")
		if err := os.WriteFile(f, conf, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("bird", "-p", "-c", f).CombinedOutput(); err != nil {
			t.Errorf("bird -p: %v: %s", err, out)
		}
	}
}

// Render errors name the NodeConfig field, not bird.Config's.
func TestRenderErrorsNameTheField(t *testing.T) {
	secrets := map[model.SecretRef]string{{Name: "bgp", Key: "router"}: "s3cret"}
	for _, tc := range []struct {
		name   string
		change func(n *model.Node)
		addrs  []netip.Prefix
		pw     map[model.SecretRef]string
		want   []string
	}{
		{"peer on no subnet", func(n *model.Node) { n.BGP.Peers[0].Address = addr("2001:db8:99::1") }, uplinks, secrets,
			[]string{`nodeconfig host001: spec.bgp.peers[0].address "2001:db8:99::1": no node address on the peer's subnet`}},
		{"two errors", func(n *model.Node) {
			n.BGP.Peers[0].Address = addr("2001:db8:99::1")
			n.BGP.Peers[1].SourceAddress = addr("198.19.1.9")
		}, uplinks, secrets, []string{
			`spec.bgp.peers[0].address "2001:db8:99::1"`,
			"\nspec.bgp.peers[1].sourceAddress \"198.19.1.9\": not one of the node's addresses",
		}},
		{"peer inside the pool", func(n *model.Node) { n.BGP.Peers[1].Address = addr("10.42.1.7") }, uplinks, secrets,
			[]string{`spec.bgp.peers[1].address "10.42.1.7": inside the node's pod pool 10.42.1.0/24`}},
		{"no router id", func(*model.Node) {}, uplinks[:1], secrets,
			[]string{"spec.bgp.routerID: not set, and the node has no IPv4 address"}},
		{"bad password", func(*model.Node) {}, uplinks, map[model.SecretRef]string{{Name: "bgp", Key: "router"}: `a"b`},
			[]string{`spec.bgp.peers[1].passwordSecretRef (the Secret's value): byte 1 is a double quote`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := node()
			tc.change(n)
			_, err := Render(n, tc.addrs, nil, nil, nil, tc.pw)
			if err == nil {
				t.Fatal("rendered")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), `a"b`) {
				t.Errorf("error repeats the password: %v", err)
			}
		})
	}
}
