package routing

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/model"
)

func gatewayNode() *model.Node {
	return &model.Node{Name: "n1", BGP: &model.BGP{ASN: 65101, Peers: []model.Peer{
		{DefaultGateway: 6, ASN: 65000},
		{DefaultGateway: 4, ASN: 65000},
		{Address: netip.MustParseAddr("2001:db8::9"), ASN: 65009},
	}}}
}

func TestResolvePeers(t *testing.T) {
	n := gatewayNode()
	got, err := ResolvePeers(n, []netip.Addr{netip.MustParseAddr("2001:db8:1ab:3::1"), netip.MustParseAddr("198.19.3.1")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2001:db8:1ab:3::1", "198.19.3.1", "2001:db8::9"}
	for i, p := range got.BGP.Peers {
		if p.Address.String() != want[i] {
			t.Errorf("peers[%d] = %s, want %s", i, p.Address, want[i])
		}
	}
	if n.BGP.Peers[0].Address.IsValid() {
		t.Error("ResolvePeers changed its input")
	}
	// A node without gateway peers is returned as it is.
	fixed := &model.Node{BGP: &model.BGP{Peers: n.BGP.Peers[2:]}}
	if same, err := ResolvePeers(fixed, nil); err != nil || same != fixed {
		t.Errorf("fixed peers: %p, %v; want the node itself", same, err)
	}
}

func TestResolvePeersErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		gws  []string
		want string
	}{
		{"no-ipv4", []string{"2001:db8:1ab:3::1"}, "spec.bgp.peers[1].address default-gateway-ipv4: the node has no IPv4 default route"},
		{"none", nil, "spec.bgp.peers[0].address default-gateway-ipv6: the node has no IPv6 default route"},
		{"link-local", []string{"fe80::1", "198.19.3.1"}, "spec.bgp.peers[0].address default-gateway-ipv6: the default gateway fe80::1 is not a global unicast address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gws []netip.Addr
			for _, g := range tc.gws {
				gws = append(gws, netip.MustParseAddr(g))
			}
			_, err := ResolvePeers(gatewayNode(), gws)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
