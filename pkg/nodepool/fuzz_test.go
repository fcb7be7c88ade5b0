package nodepool

import (
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// FuzzCompute plans for pools with arbitrary ranges and block sizes and
// NodeConfigs already holding arbitrary pools, applies the plan, plans
// again, and checks what must always hold: no two NodeConfigs' pools
// overlap, every block made is a block of its pool, a second plan over the
// result creates nothing for Nodes the first one served, and an operator's
// NodeConfig is never in the plan.
func FuzzCompute(f *testing.F) {
	f.Add("2001:db8:42::/48", uint8(64), "10.42.0.0/16", uint8(24), "2001:db8:42::/56", uint8(64), "10.42.0.0/17", uint8(24), "10.42.3.0/24", uint8(7))
	f.Add("2001:db8::/120", uint8(120), "10.0.0.0/30", uint8(30), "2001:db8::/119", uint8(120), "10.0.0.0/29", uint8(30), "2001:db8::/121", uint8(3))
	f.Fuzz(func(t *testing.T, a6 string, b6 uint8, a4 string, b4 uint8, c6 string, d6 uint8, c4 string, d4 uint8, existing string, n uint8) {
		pools := []*v1alpha1.NodePool{
			{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: v1alpha1.NodePoolSpec{CIDR6: a6, BlockSize6: int32(b6), CIDR4: a4, BlockSize4: int32(b4)}},
			{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v1alpha1.NodePoolSpec{CIDR6: c6, BlockSize6: int32(d6), CIDR4: c4, BlockSize4: int32(d4),
				NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"pool": "b"}}}},
		}
		var nodes []Node
		for i := range int(n % 24) {
			nd := node(fmt.Sprintf("n%02d", i))
			if i%2 == 1 {
				nd.Labels["pool"] = "b"
			}
			nodes = append(nodes, nd)
		}
		own := &v1alpha1.NodeConfig{ObjectMeta: metav1.ObjectMeta{Name: "n00"}}
		if q, err := netip.ParsePrefix(existing); err == nil && q.Addr().Is4() {
			own.Spec.CIDR4 = existing
		} else {
			own.Spec.CIDR6 = existing
		}
		configs := []*v1alpha1.NodeConfig{own}
		p := Compute(pools, nodes, configs, t0)
		for _, up := range append(p.Update, p.Delete...) {
			if up.Name == own.Name {
				t.Fatalf("the operator's NodeConfig is in the plan: %+v", up)
			}
		}
		configs = append(configs, p.Create...)
		type held struct {
			p    netip.Prefix
			name string
		}
		var all []held
		for _, nc := range configs {
			for _, s := range []string{nc.Spec.CIDR6, nc.Spec.CIDR4} {
				if q, err := netip.ParsePrefix(s); err == nil {
					all = append(all, held{q.Masked(), nc.Name})
				}
			}
		}
		for i := range all {
			for j := range i {
				if all[i].p.Overlaps(all[j].p) {
					t.Fatalf("%s (%s) and %s (%s) overlap", all[i].name, all[i].p, all[j].name, all[j].p)
				}
			}
		}
		for _, nc := range p.Create {
			var pool *v1alpha1.NodePool
			for _, np := range pools {
				if np.Name == nc.Labels[v1alpha1.LabelNodePool] {
					pool = np
				}
			}
			for _, c := range [][2]string{{nc.Spec.CIDR6, pool.Spec.CIDR6}, {nc.Spec.CIDR4, pool.Spec.CIDR4}} {
				if c[0] == "" {
					continue
				}
				blk, r := netip.MustParsePrefix(c[0]), netip.MustParsePrefix(c[1])
				if !r.Contains(blk.Addr()) || blk.Bits() < r.Bits() {
					t.Fatalf("%s got %s, not a block of its pool's %s", nc.Name, blk, r)
				}
			}
		}
		again := Compute(pools, nodes, configs, t0)
		if len(again.Create) != 0 || len(again.Update) != 0 || len(again.Delete) != 0 {
			t.Fatalf("the plan over its own result writes again: create %v update %v delete %v", blocks(again.Create), blocks(again.Update), again.Delete)
		}
	})
}
