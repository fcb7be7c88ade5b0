package kube

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stesting "k8s.io/client-go/testing"

	"github.com/fritzlab/flock/pkg/kube/apiclient/apiclientfake"
)

func nodeWith(conds ...corev1.NodeCondition) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{Conditions: conds}}
}

func TestSetNodeNetwork(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}
	client := apiclientfake.New(nodeWith(ready,
		corev1.NodeCondition{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue, Reason: "NoRouteCreated"}))

	check := func(at time.Time, transition time.Time) {
		t.Helper()
		if err := SetNodeNetwork(ctx, client, "node-1", nil, at); err != nil {
			t.Fatal(err)
		}
		n, err := client.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c := nodeCondition(n, corev1.NodeReady); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "KubeletReady" {
			t.Errorf("Ready condition changed: %+v", c)
		}
		c := nodeCondition(n, corev1.NodeNetworkUnavailable)
		if c == nil || c.Status != corev1.ConditionFalse || c.Reason != ReasonFlockReady || c.Message != MessageFlockReady {
			t.Fatalf("NetworkUnavailable = %+v", c)
		}
		if !c.LastHeartbeatTime.Time.Equal(at) || !c.LastTransitionTime.Time.Equal(transition) {
			t.Errorf("heartbeat %v transition %v, want %v and %v", c.LastHeartbeatTime, c.LastTransitionTime, at, transition)
		}
		if len(n.Status.Conditions) != 2 {
			t.Errorf("conditions = %+v", n.Status.Conditions)
		}
	}
	check(t0, t0)                    // True -> False: a transition
	check(t0.Add(time.Minute), t0)   // still False: only the heartbeat moves
	check(t0.Add(2*time.Minute), t0) // and again
	if err := SetNodeNetwork(ctx, client, "node-2", nil, t0); err == nil {
		t.Error("no error for a missing node")
	}

	// Not ready (no NodeConfig accepted, say): True, with the reason.
	t1 := t0.Add(3 * time.Minute)
	if err := SetNodeNetwork(ctx, client, "node-1", errors.New("nodeconfig: no NodeConfig for node node-1"), t1); err != nil {
		t.Fatal(err)
	}
	n, _ := client.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	c := nodeCondition(n, corev1.NodeNetworkUnavailable)
	if c == nil || c.Status != corev1.ConditionTrue || c.Reason != ReasonFlockNotReady || c.Message != "nodeconfig: no NodeConfig for node node-1" ||
		!c.LastTransitionTime.Time.Equal(t1) {
		t.Errorf("NetworkUnavailable while not ready = %+v", c)
	}
}

// The condition follows the readiness within NodeCheckEvery, and an
// unchanged one is re-asserted every NodeReadyEvery, not at every check.
func TestKeepNodeNetwork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		client := apiclientfake.New(nodeWith())
		var notReady atomic.Pointer[error]
		ready := func(context.Context) error {
			if p := notReady.Load(); p != nil {
				return *p
			}
			return nil
		}
		status := func() corev1.ConditionStatus {
			n, _ := client.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
			if c := nodeCondition(n, corev1.NodeNetworkUnavailable); c != nil {
				return c.Status
			}
			return ""
		}
		patches := func() int {
			n := 0
			for _, a := range client.Actions() {
				if p, ok := a.(k8stesting.PatchAction); ok && p.GetSubresource() == "status" {
					n++
				}
			}
			return n
		}
		done := make(chan struct{})
		go func() {
			KeepNodeNetwork(ctx, client, "node-1", ready, NodeReadyEvery, discard)
			close(done)
		}()
		synctest.Wait()
		if n := patches(); n != 1 {
			t.Fatalf("%d patches at start, want 1", n)
		}
		time.Sleep(NodeReadyEvery - time.Second)
		synctest.Wait()
		if n := patches(); n != 1 {
			t.Fatalf("%d patches before 60 s, want 1", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := patches(); n != 2 {
			t.Fatalf("%d patches at 60 s, want 2", n)
		}
		time.Sleep(5 * NodeReadyEvery)
		synctest.Wait()
		if n := patches(); n != 7 {
			t.Fatalf("%d patches at 6 min, want 7", n)
		}
		if s := status(); s != corev1.ConditionFalse {
			t.Fatalf("NetworkUnavailable %s while ready, want False", s)
		}
		err := errors.New("bird: connection refused")
		notReady.Store(&err)
		time.Sleep(NodeCheckEvery)
		synctest.Wait()
		if s := status(); s != corev1.ConditionTrue || patches() != 8 {
			t.Fatalf("NetworkUnavailable %s (%d patches) %s after the agent became unready, want True in one more patch", s, patches(), NodeCheckEvery)
		}
		notReady.Store(nil)
		time.Sleep(NodeCheckEvery)
		synctest.Wait()
		if s := status(); s != corev1.ConditionFalse {
			t.Fatalf("NetworkUnavailable %s after the agent became ready again, want False", s)
		}
		cancel()
		<-done
	})
}
