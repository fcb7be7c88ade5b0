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
	"github.com/fritzlab/flock/pkg/nodepool"
)

func poolSpec() map[string]any {
	return map[string]any{
		"nodeSelector": map[string]any{"matchLabels": map[string]any{"rack": "r1"}},
		"cidr6":        "2001:db8:42::/48",
		"cidr4":        "10.42.0.0/16",
		"defaults":     map[string]any{"ipv6": true},
		"bgp": map[string]any{"asn": int64(65100), "peers": []any{
			map[string]any{"address": "default-gateway-ipv6", "asn": int64(65000)},
			map[string]any{"address": "default-gateway-ipv4", "asn": int64(65000)},
		}},
		"anycast": map[string]any{"allowedCIDRs": []any{"2001:db8:ffff::/48"}},
	}
}

// A valid NodePool is stored with the block sizes defaulted (/64, /24),
// and the controller's own check accepts it.
func TestValidNodePool(t *testing.T) {
	for name, change := range map[string]func(map[string]any){
		"full":          func(map[string]any) {},
		"ipv6-only":     del("cidr4"),
		"pod-cidrs":     func(s map[string]any) { delete(s, "cidr4"); s["ipv4FromPodCIDRs"] = true },
		"sized":         func(s map[string]any) { s["blockSize6"] = int64(72); s["blockSize4"] = int64(28) },
		"fixed-peers":   set("bgp.peers", peer("2001:db8::1", 65000)),
		"no-selector":   del("nodeSelector"),
		"widest-blocks": func(s map[string]any) { s["cidr4"] = "10.0.0.0/8"; s["blockSize4"] = int64(30) },
	} {
		t.Run(name, func(t *testing.T) {
			got := nodePoolKind.valid(t, name, change)
			var np v1alpha1.NodePool
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(got.Object, &np); err != nil {
				t.Fatal(err)
			}
			if np.Spec.BlockSize6 == 0 || np.Spec.BlockSize4 == 0 {
				t.Errorf("block sizes %d %d, want defaults", np.Spec.BlockSize6, np.Spec.BlockSize4)
			}
			np.CreationTimestamp = metav1.Now()
			plan := nodepool.Compute([]*v1alpha1.NodePool{&np}, nil, nil, time.Now())
			if c := meta.FindStatusCondition(plan.Status[np.Name].Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
				t.Errorf("the controller rejects what the schema accepts: %+v", c)
			}
		})
	}
}

func TestInvalidNodePool(t *testing.T) {
	nodePoolKind.checkInvalid(t, []invalidCase{
		{"nothing", func(s map[string]any) { delete(s, "cidr6"); delete(s, "cidr4") }, "spec", "at least one of spec.cidr6, spec.cidr4 and spec.ipv4FromPodCIDRs"},
		{"cidr4-and-pod-cidrs", set("ipv4FromPodCIDRs", true), "spec", "exclude each other"},
		{"cidr6-ipv4", set("cidr6", "10.0.0.0/8"), "spec.cidr6", "must be an IPv6 CIDR"},
		{"cidr6-host-bits", set("cidr6", "2001:db8:42::1/48"), "spec.cidr6", "no host bits"},
		{"cidr6-link-local", set("cidr6", "fe80::/48"), "spec.cidr6", "unicast range"},
		{"cidr4-garbage", set("cidr4", "10.42/16"), "spec.cidr4", "must be a CIDR"},
		{"block6-shorter-than-range", set("blockSize6", int64(40)), "spec", "blockSize6 must be at least the prefix length of spec.cidr6"},
		{"block6-too-many", set("cidr6", "2001:db8::/32"), "spec", "at most 24 more"},
		{"block4-31", set("blockSize4", int64(31)), "spec.blockSize4", "less than or equal to 30"},
		{"block6-121", set("blockSize6", int64(121)), "spec.blockSize6", "less than or equal to 120"},
		{"router-id", set("bgp.routerID", "192.0.2.1"), "spec", "routerID is per node"},
		{"peer-garbage", set("bgp.peers", peer("gateway", 65000)), "spec.bgp.peers[0].address", "default-gateway-ipv6"},
	})
}

// examples/nodepool-racks.yaml is accepted as it is.
func TestNodePoolExample(t *testing.T) {
	root, err := controlplane.SourceRoot()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := controlplane.ReadObjects(filepath.Join(root, "examples", "nodepool-racks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 {
		t.Fatalf("%d objects, want 2 NodePools", len(objs))
	}
	for _, o := range objs {
		if _, err := nodePoolKind.client(t).Create(context.Background(), o, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("%s: %v", o.GetName(), err)
		}
	}
}
