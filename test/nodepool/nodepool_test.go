package nodepool

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/controlplane/controlplanetest"
)

func spec(six, four string) v1alpha1.NodePoolSpec {
	return v1alpha1.NodePoolSpec{CIDR6: six, CIDR4: four,
		BGP: &v1alpha1.BGPSpec{ASN: 65100, Peers: []v1alpha1.BGPPeer{
			{Address: v1alpha1.PeerDefaultGateway6, ASN: 65000}, {Address: v1alpha1.PeerDefaultGateway4, ASN: 65000}}}}
}

// 50 Nodes created at once get 50 NodeConfigs with distinct blocks of the
// pool (the API server's defaults: /64 and /24), each owned by its Node.
func TestFiftyNodesAtOnce(t *testing.T) {
	h := setup(t)
	h.createPool(t, "fifty", spec("2001:db8:50::/48", "10.50.0.0/16"))
	h.StartReplica(t, "fifty-a")
	all := names("fifty", 1, 50)
	h.createNodes(t, "fifty", all)
	took := waitFor(t, 60*time.Second, "50 NodeConfigs", func() (bool, string) {
		ncs := h.configs(t, "fifty")
		return len(ncs) == 50, fmt.Sprintf("%d NodeConfigs", len(ncs))
	})
	t.Logf("50 NodeConfigs %s after the Nodes were created", took.Round(time.Millisecond))
	ncs := h.configs(t, "fifty")
	checkDistinct(t, ncs, "2001:db8:50::/48", "10.50.0.0/16")
	for _, name := range all {
		nc := ncs[name]
		node, err := h.cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(nc.OwnerReferences) != 1 || nc.OwnerReferences[0].UID != node.UID || nc.OwnerReferences[0].Kind != "Node" {
			t.Errorf("%s: owner references %+v, want its Node %s", name, nc.OwnerReferences, node.UID)
		}
		if !strings.HasSuffix(nc.Spec.CIDR6, "/64") || !strings.HasSuffix(nc.Spec.CIDR4, "/24") {
			t.Errorf("%s: pools %s %s, want a /64 and a /24", name, nc.Spec.CIDR6, nc.Spec.CIDR4)
		}
	}
	// The Nodes are served in name order from the lowest block.
	if got := ncs["fifty-001"].Spec.CIDR6; got != "2001:db8:50::/64" {
		t.Errorf("fifty-001 got %s, want the first block 2001:db8:50::/64", got)
	}
	waitFor(t, 30*time.Second, "the pool's status", func() (bool, string) {
		np := h.pool(t, "fifty")
		ok := np.Status.Nodes == 50 && np.Status.IPv6 != nil && np.Status.IPv6.Used == 50 && np.Status.IPv4 != nil && np.Status.IPv4.Free == 206
		return ok, fmt.Sprintf("%+v %+v %+v", np.Status.Nodes, np.Status.IPv6, np.Status.IPv4)
	})
}

// A deleted Node's NodeConfig is deleted (no garbage collector runs here)
// and its blocks go to the next Node; an operator's NodeConfig (managed:
// "false") outlives its Node.
func TestNodeDeletedBlockReused(t *testing.T) {
	h := setup(t)
	h.createPool(t, "reuse", spec("2001:db8:51::/48", "10.51.0.0/16"))
	h.StartReplica(t, "reuse-a")
	h.createNodes(t, "reuse", names("reuse", 1, 4))
	waitFor(t, 60*time.Second, "4 NodeConfigs", func() (bool, string) {
		ncs := h.configs(t, "reuse")
		return len(ncs) == 4, keys(ncs)
	})
	before := h.configs(t, "reuse")["reuse-002"]
	// Taken over by the operator: kept when its Node goes.
	h.annotate(t, "reuse-003", v1alpha1.AnnotationManaged, "false")

	h.deleteNode(t, "reuse-002")
	h.deleteNode(t, "reuse-003")
	waitFor(t, 30*time.Second, "reuse-002's NodeConfig deleted", func() (bool, string) {
		ncs := h.configs(t, "reuse")
		_, gone := ncs["reuse-002"]
		return !gone, keys(ncs)
	})
	h.createNode(t, "reuse", "reuse-100")
	waitFor(t, 30*time.Second, "reuse-100's NodeConfig", func() (bool, string) {
		_, ok := h.configs(t, "reuse")["reuse-100"]
		return ok, ""
	})
	ncs := h.configs(t, "reuse")
	if got := ncs["reuse-100"]; got.Spec.CIDR6 != before.Spec.CIDR6 || got.Spec.CIDR4 != before.Spec.CIDR4 {
		t.Errorf("reuse-100 got %s %s, want reuse-002's freed %s %s", got.Spec.CIDR6, got.Spec.CIDR4, before.Spec.CIDR6, before.Spec.CIDR4)
	}
	if _, kept := ncs["reuse-003"]; !kept {
		t.Error("the operator's NodeConfig reuse-003 was deleted")
	}
	checkDistinct(t, ncs, "2001:db8:51::/48", "10.51.0.0/16")
}

// Two replicas; the leader is killed (SIGKILL: it never releases the
// Lease) while Nodes keep coming. The other takes over and no block is
// ever handed out twice.
func TestLeaderKilledNoDuplicate(t *testing.T) {
	h := setup(t)
	h.createPool(t, "failover", spec("2001:db8:52::/48", "10.52.0.0/16"))
	replicas := map[string]*controlplanetest.Replica{
		"failover-a": h.StartReplica(t, "failover-a"),
		"failover-b": h.StartReplica(t, "failover-b"),
	}
	var first string
	waitFor(t, 30*time.Second, "a leader", func() (bool, string) {
		first = h.LeaseHolder() // an earlier test's replica until its lease expires
		return replicas[first] != nil, first
	})
	done := make(chan struct{})
	go func() { // Nodes arrive one after the other throughout
		defer close(done)
		for _, n := range names("failover", 1, 40) {
			h.createNode(t, "failover", n)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	waitFor(t, 60*time.Second, "10 NodeConfigs", func() (bool, string) {
		ncs := h.configs(t, "failover")
		return len(ncs) >= 10, keys(ncs)
	})
	replicas[first].Kill()
	t.Logf("killed the leader %s with %d NodeConfigs made", first, len(h.configs(t, "failover")))
	<-done
	waitFor(t, 60*time.Second, "40 NodeConfigs", func() (bool, string) {
		ncs := h.configs(t, "failover")
		return len(ncs) == 40, fmt.Sprintf("%d: %s", len(ncs), keys(ncs))
	})
	if now := h.LeaseHolder(); now == first || now == "" {
		t.Errorf("lease held by %q after killing %s", now, first)
	}
	checkDistinct(t, h.configs(t, "failover"), "2001:db8:52::/48", "10.52.0.0/16")
}

// A pool with room for two Nodes: the third waits, the pool says it is
// exhausted (status and an Event), and gets its block once one is freed.
func TestExhausted(t *testing.T) {
	h := setup(t)
	h.createPool(t, "tiny", spec("2001:db8:53::/63", "10.53.0.0/23"))
	h.StartReplica(t, "tiny-a")
	h.createNodes(t, "tiny", names("tiny", 1, 3))
	waitFor(t, 30*time.Second, "Ready=False Exhausted", func() (bool, string) {
		c := meta.FindStatusCondition(h.pool(t, "tiny").Status.Conditions, v1alpha1.ConditionReady)
		return c != nil && c.Reason == v1alpha1.ReasonExhausted && strings.Contains(c.Message, "exhausted"), fmt.Sprintf("%+v", c)
	})
	if ncs := h.configs(t, "tiny"); len(ncs) != 2 || ncs["tiny-003"] != nil {
		t.Errorf("NodeConfigs %s, want tiny-001 and tiny-002", keys(ncs))
	}
	waitFor(t, 30*time.Second, "an Exhausted Event", func() (bool, string) {
		evs, err := h.cs.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == v1alpha1.NodePoolKind && e.InvolvedObject.Name == "tiny" &&
				e.Type == corev1.EventTypeWarning && e.Reason == v1alpha1.ReasonExhausted && strings.Contains(e.Message, "tiny-003") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events", len(evs.Items))
	})
	h.deleteNode(t, "tiny-001")
	waitFor(t, 30*time.Second, "tiny-003 served", func() (bool, string) {
		ncs := h.configs(t, "tiny")
		return ncs["tiny-003"] != nil && ncs["tiny-001"] == nil, keys(ncs)
	})
}

func (h *harness) pool(t *testing.T, name string) *v1alpha1.NodePool {
	t.Helper()
	u, err := h.dc.Resource(v1alpha1.NodePoolGVR).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	np := &v1alpha1.NodePool{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, np); err != nil {
		t.Fatal(err)
	}
	return np
}

func (h *harness) annotate(t *testing.T, nodeConfig, key, value string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)
	if _, err := h.dc.Resource(v1alpha1.NodeConfigGVR).Patch(context.Background(), nodeConfig, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}
