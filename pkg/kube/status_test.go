package kube

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8stesting "k8s.io/client-go/testing"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// reportedStatus reads drainingPools and usage each on its own: a bad one
// reads as unset, and does not hide the other.
func TestReportedStatus(t *testing.T) {
	u := nodeConfig("node-1", 1, map[string]any{})
	u.Object["status"] = map[string]any{
		"drainingPools": []any{map[string]any{"cidr": "10.0.0.0/24", "allocations": int64(3)}},
		"usage":         map[string]any{"bgpConfigured": "not a number"},
	}
	got := reportedStatus(u)
	if len(got.DrainingPools) != 1 || got.DrainingPools[0] != (v1alpha1.DrainingPool{CIDR: "10.0.0.0/24", Allocations: 3}) || got.Usage != nil {
		t.Errorf("reportedStatus = %+v", got)
	}
	u.Object["status"] = map[string]any{"usage": map[string]any{"bgpConfigured": int64(2)}}
	if got := reportedStatus(u); got.DrainingPools != nil || got.Usage == nil || got.Usage.BGPConfigured != 2 {
		t.Errorf("reportedStatus = %+v", got)
	}
}

// The status worker writes drainingPools and usage only when they differ
// from what the object says, and removes drainingPools when none drain.
func TestStatusReports(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dyn := newFakeDynamic()
	if _, err := dyn.Resource(NodeConfigResource).Create(ctx, nodeConfig("node-1", 1, map[string]any{
		"cidr6": "2001:db8:42:1::/64", "cidr4": "10.42.1.0/24"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := NewNodeConfigs(dyn, "node-1", discard)
	go c.Run(ctx)
	eventually(t, "sync", c.HasSynced)
	status := func() map[string]any {
		u, err := dyn.Resource(NodeConfigResource).Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s, _, _ := unstructured.NestedMap(u.Object, "status")
		return s
	}
	patches := func() int {
		n := 0
		for _, a := range dyn.Actions() {
			if p, ok := a.(k8stesting.PatchAction); ok && p.GetSubresource() == "status" {
				n++
			}
		}
		return n
	}
	eventually(t, "Accepted written", func() bool { return status()["conditions"] != nil })

	c.SetUsage(&v1alpha1.NodeUsage{BGPConfigured: 2})
	eventually(t, "usage written", func() bool {
		v, _, _ := unstructured.NestedInt64(status(), "usage", "bgpConfigured")
		return v == 2
	})
	c.SetDrainingPools([]v1alpha1.DrainingPool{{CIDR: "10.0.0.0/24", Allocations: 1}})
	eventually(t, "drainingPools written", func() bool { _, ok := status()["drainingPools"]; return ok })
	// Once the cache has the writes, the same reports write nothing.
	time.Sleep(200 * time.Millisecond)
	before := patches()
	c.SetUsage(&v1alpha1.NodeUsage{BGPConfigured: 2})
	c.SetDrainingPools([]v1alpha1.DrainingPool{{CIDR: "10.0.0.0/24", Allocations: 1}})
	time.Sleep(300 * time.Millisecond)
	if n := patches() - before; n != 0 {
		t.Errorf("%d status patches for unchanged reports, want 0", n)
	}
	c.SetDrainingPools(nil)
	eventually(t, "drainingPools removed", func() bool { _, ok := status()["drainingPools"]; return !ok })
}
