package annotations

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fritzlab/flock/pkg/iid"
	"github.com/fritzlab/flock/pkg/model"
)

func TestResolve(t *testing.T) {
	dual := &model.Node{
		Name:  "host001",
		Pool6: pfx("2001:db8:42:1::/64"),
		Pool4: pfx("10.42.1.0/24"),
	}
	hashNode := &model.Node{
		Name:        "host002",
		Pool6:       pfx("2001:db8:42:2::/64"),
		Pool4:       pfx("10.42.2.0/24"),
		Annotations: map[string]string{KeyIPAlgo: "hash"},
	}
	v6only := &model.Node{Name: "host003", Pool6: pfx("2001:db8:42:3::/64")}
	v4only := &model.Node{Name: "host004", Pool4: pfx("10.42.4.0/24"), Defaults: model.FamilyDefaults{IPv6: ptr(false)}}
	pod := func(ann map[string]string) *model.Pod {
		return &model.Pod{Namespace: "default", Name: "web-0", Annotations: ann}
	}
	tests := []struct {
		name    string
		pod     *model.Pod
		node    *model.Node
		want    Intent
		warns   []string
		wantErr string
	}{
		{name: "plain pod on dual-stack node", pod: pod(nil), node: dual, want: Intent{
			Families: model.Families{IPv6: true, IPv4: true},
			Ranges6:  pfxs("2001:db8:42:1::/64"), Ranges4: pfxs("10.42.1.0/24"), Algo: iid.Random,
		}},
		{name: "node algo", pod: pod(nil), node: hashNode, want: Intent{
			Families: model.Families{IPv6: true, IPv4: true},
			Ranges6:  pfxs("2001:db8:42:2::/64"), Ranges4: pfxs("10.42.2.0/24"), Algo: iid.Hash,
		}},
		{name: "ranges narrowed", node: dual, pod: pod(map[string]string{
			KeyCIDR6: "2001:db8:42:1:1::/80, 2001:db8::/32", KeyCIDR4: "10.42.9.0/24,10.42.1.64/26", KeyIPAlgo: "ipv4",
		}), want: Intent{
			Families: model.Families{IPv6: true, IPv4: true},
			Ranges6:  pfxs("2001:db8:42:1:1::/80", "2001:db8:42:1::/64"), Ranges4: pfxs("10.42.1.64/26"), Algo: iid.IPv4,
		}, warns: []string{`annotation flock.fritzlab.net/cidr4="10.42.9.0/24,10.42.1.64/26" has entry 10.42.9.0/24 outside node pool 10.42.1.0/24; skipping it`}},
		{name: "v4-only pod ignores v6 annotations", node: hashNode, pod: pod(map[string]string{
			KeyIPv6: "false", KeyCIDR6: "zz", KeyIPAlgo: "bogus",
		}), want: Intent{Families: model.Families{IPv4: true}, Ranges4: pfxs("10.42.2.0/24")}},
		{name: "v6-only node default", node: v6only, pod: pod(map[string]string{KeyIPv4: "false"}), want: Intent{
			Families: model.Families{IPv6: true}, Ranges6: pfxs("2001:db8:42:3::/64"), Algo: iid.Random,
		}},
		{name: "v4-only node by default", node: v4only, pod: pod(nil), want: Intent{
			Families: model.Families{IPv4: true}, Ranges4: pfxs("10.42.4.0/24"),
		}},
		{name: "warnings kept with result", node: dual, pod: pod(map[string]string{KeyIPv4: "yes", KeyCIDR6: ""}), want: Intent{
			Families: model.Families{IPv6: true, IPv4: true},
			Ranges6:  pfxs("2001:db8:42:1::/64"), Ranges4: pfxs("10.42.1.0/24"), Algo: iid.Random,
		}, warns: []string{
			`annotation flock.fritzlab.net/ipv4="yes" is not true or false; using the built-in default (true)`,
			`annotation flock.fritzlab.net/cidr6="" is empty; using the whole node pool`,
		}},
		{name: "no v4 pool", node: v6only, pod: pod(nil),
			wantErr: `pod default/web-0 wants IPv4 (from the built-in default) but node host003 has no IPv4 pool (NodeConfig spec.cidr4 is empty); set annotation flock.fritzlab.net/ipv4: "false" on the pod or give the node a pool`},
		{name: "no v6 pool, asked by pod", node: v4only, pod: pod(map[string]string{KeyIPv6: "true"}),
			wantErr: "pod default/web-0 wants IPv6 (from the pod annotation) but node host004 has no IPv6 pool"},
		{name: "both false", node: dual, pod: pod(map[string]string{KeyIPv6: "false", KeyIPv4: "false"}),
			wantErr: "pod default/web-0 on node host001: pod gets no address family"},
		{name: "no entry inside pool", node: dual, pod: pod(map[string]string{KeyCIDR6: "2001:db8:42:2::/64"}),
			warns:   []string{`annotation flock.fritzlab.net/cidr6="2001:db8:42:2::/64" has entry 2001:db8:42:2::/64 outside node pool 2001:db8:42:1::/64; skipping it`},
			wantErr: `pod default/web-0: annotation flock.fritzlab.net/cidr6="2001:db8:42:2::/64": no entry lies inside node pool 2001:db8:42:1::/64`},
		{name: "only invalid entries", node: dual, pod: pod(map[string]string{KeyCIDR4: "10.42.1.1/24"}),
			warns:   []string{`annotation flock.fritzlab.net/cidr4="10.42.1.1/24" has entry "10.42.1.1/24" with host bits set (the network is 10.42.1.0/24); skipping it`},
			wantErr: `annotation flock.fritzlab.net/cidr4="10.42.1.1/24": no entry lies inside node pool 10.42.1.0/24`},
		{name: "nil pod", node: dual, wantErr: "pod or node is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warns, err := Resolve(tt.pod, tt.node)
			checkErr(t, err, tt.wantErr)
			if diff := cmp.Diff(tt.want, got, prefixCmp, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Resolve (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.warns, strs(warns)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// The ranges Resolve returns must be usable as they are: inside the pool,
// masked, and for IPv6 short enough for an interface identifier.
func TestResolveRangesInsidePool(t *testing.T) {
	node := &model.Node{Name: "n", Pool6: pfx("2001:db8::/56"), Pool4: pfx("10.0.0.0/16")}
	p := &model.Pod{Namespace: "a", Name: "b", Annotations: map[string]string{
		KeyCIDR6: "::/0,2001:db8:0:ff::/64,2001:db8::/127,2001:db9::/64",
		KeyCIDR4: "0.0.0.0/0,10.0.3.0/24,10.1.0.0/16,10.0.0.7/32",
	}}
	in, _, err := Resolve(p, node)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range in.Ranges6 {
		if !within(r, node.Pool6) || r.Bits() > iid.MaxBits {
			t.Errorf("range %s not usable in %s", r, node.Pool6)
		}
	}
	for _, r := range in.Ranges4 {
		if !within(r, node.Pool4) {
			t.Errorf("range %s not inside %s", r, node.Pool4)
		}
	}
	if len(in.Ranges6) != 2 || len(in.Ranges4) != 3 {
		t.Errorf("ranges = %v %v, want 2 and 3", in.Ranges6, in.Ranges4)
	}
}

func within(r, pool netip.Prefix) bool {
	return r == r.Masked() && r.Bits() >= pool.Bits() && pool.Contains(r.Addr())
}
