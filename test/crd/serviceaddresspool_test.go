package crd

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/pkg/lbipam"
)

func sapSpec() map[string]any {
	return map[string]any{
		"cidrs":             []any{"2001:db8:5::/112", "192.0.2.0/28"},
		"serviceSelector":   map[string]any{"matchLabels": map[string]any{"expose": "bgp"}},
		"namespaceSelector": map[string]any{"matchExpressions": []any{map[string]any{"key": "team", "operator": "In", "values": []any{"a", "b"}}}},
		"communities":       []any{"65000:100", "0:65535"},
		"largeCommunities":  []any{"4294967295:0:1"},
	}
}

// A valid ServiceAddressPool is stored with autoAssign defaulted to true,
// and the controller's own check accepts it.
func TestValidServiceAddressPool(t *testing.T) {
	for name, change := range map[string]func(map[string]any){
		"full":         func(map[string]any) {},
		"ipv4-only":    set("cidrs", []any{"198.51.100.0/24"}),
		"ipv6-host":    set("cidrs", []any{"2001:db8:5::7/128"}),
		"ipv4-host":    set("cidrs", []any{"192.0.2.7/32"}),
		"many":         set("cidrs", strs(16, "10.%d.0.0/16")),
		"many-mixed":   set("cidrs", append(strs(8, "10.%d.0.0/16"), strs(8, "2001:db8:%x::/48")...)),
		"manual":       set("autoAssign", false),
		"no-selectors": func(s map[string]any) { delete(s, "serviceSelector"); delete(s, "namespaceSelector") },
		"minimal":      func(s map[string]any) { clear(s); s["cidrs"] = []any{"192.0.2.0/30"} },
	} {
		t.Run(name, func(t *testing.T) {
			got := sapKind.valid(t, name, change)
			var p v1alpha1.ServiceAddressPool
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(got.Object, &p); err != nil {
				t.Fatal(err)
			}
			if p.Spec.AutoAssign == nil || *p.Spec.AutoAssign != (name != "manual") {
				t.Errorf("autoAssign %v, want the default true (false as given)", p.Spec.AutoAssign)
			}
			p.CreationTimestamp = metav1.Now()
			plan := lbipam.Compute(lbipam.Input{Pools: []*v1alpha1.ServiceAddressPool{&p}, Now: time.Now()})
			if c := meta.FindStatusCondition(plan.Pools[p.Name].Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
				t.Errorf("the controller rejects what the schema accepts: %+v", c)
			}
		})
	}
}

func TestInvalidServiceAddressPool(t *testing.T) {
	sapKind.checkInvalid(t, []invalidCase{
		{"no-cidrs", del("cidrs"), "spec.cidrs", "Required value"},
		{"empty-cidrs", set("cidrs", []any{}), "spec.cidrs", "at least 1 items"},
		{"too-many-cidrs", set("cidrs", strs(17, "10.%d.0.0/16")), "spec.cidrs", "must have at most 16 items"},
		{"duplicate-cidrs", set("cidrs", []any{"192.0.2.0/28", "192.0.2.0/28"}), "spec.cidrs[1]", "Duplicate value"},
		{"garbage", set("cidrs", []any{"192.0.2/28"}), "spec.cidrs[0]", "must be CIDRs"},
		{"address", set("cidrs", []any{"192.0.2.1"}), "spec.cidrs[0]", "must be CIDRs"},
		{"overlapping", set("cidrs", []any{"2001:db8:5::/112", "192.0.2.0/24", "192.0.2.128/25"}), "spec.cidrs", "must not overlap each other"},
		{"host-bits", set("cidrs", []any{"2001:db8:5::1/112"}), "spec.cidrs[0]", "no host bits"},
		{"link-local", set("cidrs", []any{"fe80::/64"}), "spec.cidrs[0]", "unicast ranges"},
		{"loopback", set("cidrs", []any{"127.0.0.0/8"}), "spec.cidrs[0]", "unicast ranges"},
		{"multicast", set("cidrs", []any{"239.0.0.0/8"}), "spec.cidrs[0]", "unicast ranges"},
		{"community-range", set("communities", []any{"65536:1"}), "spec.communities[0]", "at most 65535"},
		{"community-form", set("communities", []any{"65000"}), "spec.communities[0]", "should match"},
		{"large-community-range", set("largeCommunities", []any{"4294967296:0:0"}), "spec.largeCommunities[0]", "at most 4294967295"},
		{"large-community-form", set("largeCommunities", []any{"1:2"}), "spec.largeCommunities[0]", "should match"},
	})
}

// examples/serviceaddresspool.yaml is accepted as it is, and the
// controller finds both pools usable.
func TestServiceAddressPoolExample(t *testing.T) {
	root, err := controlplane.SourceRoot()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := controlplane.ReadObjects(filepath.Join(root, "examples", "serviceaddresspool.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 {
		t.Fatalf("%d objects, want 2 ServiceAddressPools", len(objs))
	}
	var ps []*v1alpha1.ServiceAddressPool
	for i, o := range objs {
		got, err := sapKind.client(t).Create(context.Background(), o, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatalf("%s: %v", o.GetName(), err)
		}
		p := &v1alpha1.ServiceAddressPool{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(got.Object, p); err != nil {
			t.Fatal(err)
		}
		p.CreationTimestamp = metav1.NewTime(time.Unix(int64(i), 0))
		ps = append(ps, p)
	}
	plan := lbipam.Compute(lbipam.Input{Pools: ps, Now: time.Now()})
	for _, p := range ps {
		if c := meta.FindStatusCondition(plan.Pools[p.Name].Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("%s: %+v", p.Name, c)
		}
	}
}
