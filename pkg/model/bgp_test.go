package model

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// bgpConfig is a valid NodeConfig using every BGP field; each case of
// TestBGPInvalid changes one thing.
func bgpConfig() *v1alpha1.NodeConfig {
	no := false
	return &v1alpha1.NodeConfig{
		ObjectMeta: metav1.ObjectMeta{Name: "host001", Generation: 7},
		Spec: v1alpha1.NodeConfigSpec{
			CIDR6: "2001:db8:42:1::/64",
			CIDR4: "10.42.1.0/24",
			BGP: &v1alpha1.BGPSpec{ASN: 65101, RouterID: "192.0.2.11", Peers: []v1alpha1.BGPPeer{
				{Address: "2001:db8:42::1", ASN: 65000},
				{
					Address: "192.0.2.1", ASN: 4200000000, SourceAddress: "192.0.2.11", BFD: true,
					HoldTime: 9, GracefulRestart: &no, RestartTime: 4095, Multihop: 255,
					PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "bgp.router-1", Key: "md5_key"},
					Communities:       []string{"65000:1", "0:65535"},
					LargeCommunities:  []string{"4294967295:0:1"},
				},
			}},
			Anycast: &v1alpha1.AnycastSpec{AllowedCIDRs: []string{"2001:db8:ffff::/48", "2001:DB8:FFFF::/48", "192.0.2.128/25"}},
		},
	}
}

func TestBGPValid(t *testing.T) {
	n, err := NodeFromConfig(bgpConfig())
	if err != nil {
		t.Fatal(err)
	}
	want := &BGP{ASN: 65101, RouterID: netip.MustParseAddr("192.0.2.11"), Peers: []Peer{
		{Address: netip.MustParseAddr("2001:db8:42::1"), ASN: 65000, GracefulRestart: true},
		{
			Address: netip.MustParseAddr("192.0.2.1"), ASN: 4200000000, SourceAddress: netip.MustParseAddr("192.0.2.11"),
			BFD: true, HoldTime: 9, GracefulRestart: false, RestartTime: 4095, Multihop: 255,
			Password:         &SecretRef{Name: "bgp.router-1", Key: "md5_key"},
			Communities:      []Community{{65000, 1}, {0, 65535}},
			LargeCommunities: []LargeCommunity{{4294967295, 0, 1}},
		},
	}}
	if diff := cmp.Diff(want, n.BGP, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("BGP (-want +got):\n%s", diff)
	}
	if n.Generation != 7 {
		t.Errorf("generation %d, want 7", n.Generation)
	}
	// Two spellings of one prefix pass the schema (a set of strings): merged.
	wantAllowed := []netip.Prefix{netip.MustParsePrefix("2001:db8:ffff::/48"), netip.MustParsePrefix("192.0.2.128/25")}
	if diff := cmp.Diff(wantAllowed, n.AnycastAllowed, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("allowedCIDRs (-want +got):\n%s", diff)
	}

	nc := bgpConfig()
	nc.Spec.BGP = nil
	if n, err := NodeFromConfig(nc); err != nil || n.BGP != nil {
		t.Errorf("without spec.bgp: %+v, %v; want no BGP", n, err)
	}
	nc = bgpConfig()
	nc.Spec.BGP.RouterID, nc.Spec.BGP.Peers = "", nil
	if n, err := NodeFromConfig(nc); err != nil || n.BGP.RouterID.IsValid() || len(n.BGP.Peers) != 0 {
		t.Errorf("asn only: %+v, %v", n.BGP, err)
	}
}

func TestBGPInvalid(t *testing.T) {
	peer := func(i int, f func(p *v1alpha1.BGPPeer)) func(*v1alpha1.NodeConfig) {
		return func(nc *v1alpha1.NodeConfig) { f(&nc.Spec.BGP.Peers[i]) }
	}
	many := func(n int, f func(i int) string) []string {
		var s []string
		for i := range n {
			s = append(s, f(i))
		}
		return s
	}
	for _, tc := range []struct {
		name   string
		change func(*v1alpha1.NodeConfig)
		want   string
	}{
		{"asn-0", func(nc *v1alpha1.NodeConfig) { nc.Spec.BGP.ASN = 0 }, "spec.bgp.asn 0: must be 1 to 4294967295"},
		{"asn-as-trans", func(nc *v1alpha1.NodeConfig) { nc.Spec.BGP.ASN = 23456 }, "spec.bgp.asn 23456: is AS_TRANS"},
		{"router-id-v6", func(nc *v1alpha1.NodeConfig) { nc.Spec.BGP.RouterID = "2001:db8::1" }, `spec.bgp.routerID "2001:db8::1": not an IPv4 address`},
		{"router-id-zero", func(nc *v1alpha1.NodeConfig) { nc.Spec.BGP.RouterID = "0.0.0.0" }, `spec.bgp.routerID "0.0.0.0": must not be`},
		{"router-id-garbage", func(nc *v1alpha1.NodeConfig) { nc.Spec.BGP.RouterID = "router" }, `spec.bgp.routerID "router"`},
		{"router-id-leading-zero", func(nc *v1alpha1.NodeConfig) { nc.Spec.BGP.RouterID = "192.0.2.011" }, `spec.bgp.routerID "192.0.2.011"`},
		{"too-many-peers", func(nc *v1alpha1.NodeConfig) {
			nc.Spec.BGP.Peers = nil
			for i := range v1alpha1.MaxBGPPeers + 1 {
				nc.Spec.BGP.Peers = append(nc.Spec.BGP.Peers, v1alpha1.BGPPeer{Address: fmt.Sprintf("2001:db8::%x", i+1), ASN: 65000})
			}
		}, "spec.bgp.peers: 33 peers, at most 32"},
		{"peer-duplicate", func(nc *v1alpha1.NodeConfig) {
			nc.Spec.BGP.Peers[1] = v1alpha1.BGPPeer{Address: "2001:db8:42::1", ASN: 65001}
		},
			`spec.bgp.peers[1].address "2001:db8:42::1": listed twice (also spec.bgp.peers[0])`},
		{"peer-asn-0", peer(1, func(p *v1alpha1.BGPPeer) { p.ASN = 0 }), "spec.bgp.peers[1].asn 0"},
		{"peer-asn-as-trans", peer(0, func(p *v1alpha1.BGPPeer) { p.ASN = 23456 }), "spec.bgp.peers[0].asn 23456: is AS_TRANS"},
		{"peer-address-empty", peer(0, func(p *v1alpha1.BGPPeer) { p.Address = "" }), `spec.bgp.peers[0].address ""`},
		{"peer-address-garbage", peer(0, func(p *v1alpha1.BGPPeer) { p.Address = "router" }), `spec.bgp.peers[0].address "router"`},
		{"peer-address-cidr", peer(0, func(p *v1alpha1.BGPPeer) { p.Address = "2001:db8::1/64" }), `spec.bgp.peers[0].address "2001:db8::1/64"`},
		{"peer-address-upper", peer(0, func(p *v1alpha1.BGPPeer) { p.Address = "2001:DB8::1" }), `spec.bgp.peers[0].address "2001:DB8::1": not in canonical form (write 2001:db8::1)`},
		{"peer-address-zeros", peer(0, func(p *v1alpha1.BGPPeer) { p.Address = "2001:db8:0::1" }), "not in canonical form"},
		{"peer-address-zone", peer(0, func(p *v1alpha1.BGPPeer) { p.Address = "fe80::1%eth0" }), "has a zone"},
		{"peer-address-v4-mapped", peer(0, func(p *v1alpha1.BGPPeer) { p.Address = "::ffff:192.0.2.1" }), "IPv4-mapped"},
		{"peer-address-link-local", peer(0, func(p *v1alpha1.BGPPeer) { p.Address = "fe80::1" }), `spec.bgp.peers[0].address "fe80::1": not a unicast address`},
		{"peer-address-link-local4", peer(1, func(p *v1alpha1.BGPPeer) { p.Address = "169.254.0.1" }), "not a unicast address"},
		{"peer-address-loopback", peer(1, func(p *v1alpha1.BGPPeer) { p.Address = "127.0.0.1" }), "not a unicast address"},
		{"peer-address-multicast", peer(0, func(p *v1alpha1.BGPPeer) { p.Address = "ff02::2" }), "not a unicast address"},
		{"peer-address-unspecified", peer(0, func(p *v1alpha1.BGPPeer) { p.Address = "::" }), "not a unicast address"},
		{"peer-address-broadcast", peer(1, func(p *v1alpha1.BGPPeer) { p.Address = "255.255.255.255" }), "not a unicast address"},
		{"source-garbage", peer(1, func(p *v1alpha1.BGPPeer) { p.SourceAddress = "me" }), `spec.bgp.peers[1].sourceAddress "me"`},
		{"source-link-local", peer(0, func(p *v1alpha1.BGPPeer) { p.SourceAddress = "fe80::2" }), `spec.bgp.peers[0].sourceAddress "fe80::2": not a unicast`},
		{"source-family-gateway", func(nc *v1alpha1.NodeConfig) {
			nc.Spec.BGP.Peers[0] = v1alpha1.BGPPeer{Address: "default-gateway-ipv4", ASN: 65000, SourceAddress: "2001:db8::2"}
		}, `spec.bgp.peers[0].sourceAddress "2001:db8::2": not of the family of address "default-gateway-ipv4"`},
		{"gateway-duplicate", func(nc *v1alpha1.NodeConfig) {
			nc.Spec.BGP.Peers[0].Address, nc.Spec.BGP.Peers[1] = "default-gateway-ipv6", v1alpha1.BGPPeer{Address: "default-gateway-ipv6", ASN: 65001}
		}, `spec.bgp.peers[1].address "default-gateway-ipv6": listed twice (also spec.bgp.peers[0])`},
		{"gateway-misspelt", peer(0, func(p *v1alpha1.BGPPeer) { p.Address = "default-gateway" }), `spec.bgp.peers[0].address "default-gateway": ParseAddr`},
		{"source-family", peer(1, func(p *v1alpha1.BGPPeer) { p.SourceAddress = "2001:db8::2" }), `spec.bgp.peers[1].sourceAddress "2001:db8::2": not of the family of address "192.0.2.1"`},
		{"hold-time-1", peer(1, func(p *v1alpha1.BGPPeer) { p.HoldTime = 1 }), "spec.bgp.peers[1].holdTime 1: must be 0 (the default) or 3 to 65535"},
		{"hold-time-2", peer(1, func(p *v1alpha1.BGPPeer) { p.HoldTime = 2 }), "spec.bgp.peers[1].holdTime 2"},
		{"hold-time-big", peer(1, func(p *v1alpha1.BGPPeer) { p.HoldTime = 65536 }), "spec.bgp.peers[1].holdTime 65536"},
		{"hold-time-negative", peer(1, func(p *v1alpha1.BGPPeer) { p.HoldTime = -3 }), "spec.bgp.peers[1].holdTime -3"},
		{"restart-time-big", peer(1, func(p *v1alpha1.BGPPeer) { p.RestartTime = 4096 }), "spec.bgp.peers[1].restartTime 4096: must be 0 (the default) to 4095"},
		{"restart-time-negative", peer(1, func(p *v1alpha1.BGPPeer) { p.RestartTime = -1 }), "spec.bgp.peers[1].restartTime -1"},
		{"multihop-big", peer(1, func(p *v1alpha1.BGPPeer) { p.Multihop = 256 }), "spec.bgp.peers[1].multihop 256: must be 0 (directly connected) to 255"},
		{"multihop-negative", peer(0, func(p *v1alpha1.BGPPeer) { p.Multihop = -1 }), "spec.bgp.peers[0].multihop -1"},
		{"secret-name-empty", peer(1, func(p *v1alpha1.BGPPeer) { p.PasswordSecretRef.Name = "" }), `spec.bgp.peers[1].passwordSecretRef.name "": not a Secret name`},
		{"secret-name-upper", peer(1, func(p *v1alpha1.BGPPeer) { p.PasswordSecretRef.Name = "BGP" }), `spec.bgp.peers[1].passwordSecretRef.name "BGP"`},
		{"secret-name-slash", peer(1, func(p *v1alpha1.BGPPeer) { p.PasswordSecretRef.Name = "kube-system/bgp" }), `passwordSecretRef.name "kube-system/bgp"`},
		{"secret-name-long", peer(1, func(p *v1alpha1.BGPPeer) { p.PasswordSecretRef.Name = strings.Repeat("a", 254) }), "passwordSecretRef.name"},
		{"secret-key-empty", peer(1, func(p *v1alpha1.BGPPeer) { p.PasswordSecretRef.Key = "" }), `spec.bgp.peers[1].passwordSecretRef.key "": not a Secret key`},
		{"secret-key-slash", peer(1, func(p *v1alpha1.BGPPeer) { p.PasswordSecretRef.Key = "a/b" }), `passwordSecretRef.key "a/b"`},
		{"secret-key-long", peer(1, func(p *v1alpha1.BGPPeer) { p.PasswordSecretRef.Key = strings.Repeat("k", 254) }), "passwordSecretRef.key"},
		{"community-big", peer(1, func(p *v1alpha1.BGPPeer) { p.Communities = []string{"65536:1"} }), `spec.bgp.peers[1].communities[0] "65536:1": must be ASN:value with both 0 to 65535`},
		{"community-value-big", peer(1, func(p *v1alpha1.BGPPeer) { p.Communities = []string{"1:99999"} }), `communities[0] "1:99999"`},
		{"community-three", peer(1, func(p *v1alpha1.BGPPeer) { p.Communities = []string{"1:2", "1:2:3"} }), `spec.bgp.peers[1].communities[1] "1:2:3"`},
		{"community-empty", peer(1, func(p *v1alpha1.BGPPeer) { p.Communities = []string{""} }), `communities[0] ""`},
		{"community-sign", peer(1, func(p *v1alpha1.BGPPeer) { p.Communities = []string{"+1:2"} }), `communities[0] "+1:2"`},
		{"community-digits", peer(1, func(p *v1alpha1.BGPPeer) { p.Communities = []string{"000001:2"} }), `communities[0] "000001:2"`},
		{"community-duplicate", peer(1, func(p *v1alpha1.BGPPeer) { p.Communities = []string{"1:2", "1:2"} }), `communities[1] "1:2": listed twice (also spec.bgp.peers[1].communities[0])`},
		{"communities-too-many", peer(1, func(p *v1alpha1.BGPPeer) {
			p.Communities = many(17, func(i int) string { return fmt.Sprintf("1:%d", i) })
		}), "spec.bgp.peers[1].communities: 17 entries, at most 16"},
		{"large-big", peer(1, func(p *v1alpha1.BGPPeer) { p.LargeCommunities = []string{"4294967296:0:0"} }), `spec.bgp.peers[1].largeCommunities[0] "4294967296:0:0": must be global:data1:data2`},
		{"large-two", peer(1, func(p *v1alpha1.BGPPeer) { p.LargeCommunities = []string{"1:2"} }), `largeCommunities[0] "1:2"`},
		{"large-too-many", peer(1, func(p *v1alpha1.BGPPeer) {
			p.LargeCommunities = many(17, func(i int) string { return fmt.Sprintf("1:2:%d", i) })
		}), "largeCommunities: 17 entries"},
		{"allowed-duplicate", func(nc *v1alpha1.NodeConfig) { nc.Spec.Anycast.AllowedCIDRs = []string{"192.0.2.0/24", "192.0.2.0/24"} },
			`spec.anycast.allowedCIDRs[1] "192.0.2.0/24": listed twice (also spec.anycast.allowedCIDRs[0])`},
		{"allowed-too-many", func(nc *v1alpha1.NodeConfig) {
			nc.Spec.Anycast.AllowedCIDRs = many(65, func(i int) string { return fmt.Sprintf("2001:db8:%x::/48", i) })
		}, "spec.anycast.allowedCIDRs: 65 entries, at most 64"},
		{"allowed-host-bits", func(nc *v1alpha1.NodeConfig) { nc.Spec.Anycast.AllowedCIDRs = []string{"192.0.2.1/24"} }, `spec.anycast.allowedCIDRs[0] "192.0.2.1/24": host bits set`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc := bgpConfig()
			tc.change(nc)
			_, err := NodeFromConfig(nc)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "nodeconfig host001: ") {
				t.Errorf("error %v\nwant one naming host001 with %q", err, tc.want)
			}
		})
	}
}

// Peers written as the node's default gateway parse to a family and no
// address; the two families are two peers.
func TestBGPDefaultGateway(t *testing.T) {
	nc := bgpConfig()
	nc.Spec.BGP.Peers = []v1alpha1.BGPPeer{
		{Address: "default-gateway-ipv6", ASN: 65000},
		{Address: "default-gateway-ipv4", ASN: 65000, SourceAddress: "192.0.2.11"},
		{Address: "2001:db8:42::1", ASN: 65000},
	}
	n, err := NodeFromConfig(nc)
	if err != nil {
		t.Fatal(err)
	}
	got := n.BGP.Peers
	if got[0].DefaultGateway != 6 || got[0].Address.IsValid() || got[0].Is4() {
		t.Errorf("peers[0] = %+v, want the IPv6 default gateway", got[0])
	}
	if got[1].DefaultGateway != 4 || got[1].Address.IsValid() || !got[1].Is4() {
		t.Errorf("peers[1] = %+v, want the IPv4 default gateway", got[1])
	}
	if got[2].DefaultGateway != 0 || got[2].Address != netip.MustParseAddr("2001:db8:42::1") {
		t.Errorf("peers[2] = %+v, want a fixed address", got[2])
	}
}
