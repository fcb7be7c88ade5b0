package kube

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/fritzlab/flock/pkg/model"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func nodeConfig(name string, generation int64, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flock.fritzlab.net/v1alpha1",
		"kind":       "NodeConfig",
		"metadata":   map[string]any{"name": name, "generation": generation},
		"spec":       spec,
	}}
	return u
}

func newFakeDynamic() *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{NodeConfigResource: "NodeConfigList"})
}

// eventually polls cond until it holds or the test has waited 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// accepted returns the Accepted condition and status.observedGeneration the
// API holds for name.
func accepted(t *testing.T, dyn *dynamicfake.FakeDynamicClient, name string) (*metav1.Condition, int64) {
	t.Helper()
	u, err := dyn.Resource(NodeConfigResource).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gen, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	return meta.FindStatusCondition(conditions(u), ConditionAccepted), gen
}

func statusPatches(dyn *dynamicfake.FakeDynamicClient) int {
	n := 0
	for _, a := range dyn.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && p.GetSubresource() == "status" {
			n++
		}
	}
	return n
}

func TestNodeConfigLifecycle(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dyn := newFakeDynamic()
	ncs := dyn.Resource(NodeConfigResource)
	c := NewNodeConfigs(dyn, "node-1", discard)

	_, err := c.Node(ctx)
	if !errors.Is(err, model.ErrNoNodeConfig) || !strings.Contains(err.Error(), "node node-1") {
		t.Fatalf("before sync: %v, want no NodeConfig naming node-1", err)
	}
	go c.Run(ctx)
	eventually(t, "sync", c.HasSynced)
	if _, err := c.Node(ctx); err == nil || err.Error() != "no NodeConfig for node node-1" {
		t.Fatalf("synced, no object: %v", err)
	}

	// Another node's NodeConfig is not ours (the fake ignores the field
	// selector, a real API server never sends it).
	if _, err := ncs.Create(ctx, nodeConfig("node-2", 1, map[string]any{"cidr6": "2001:db8:42:2::/64"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ncs.Create(ctx, nodeConfig("node-1", 1, map[string]any{"cidr6": "2001:db8:42:1::/64", "cidr4": "198.18.1.0/24"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node-1 config", func() bool { n, err := c.Node(ctx); return err == nil && n.Pool4.IsValid() })
	n, _ := c.Node(ctx)
	if n.Name != "node-1" || n.Pool6 != netip.MustParsePrefix("2001:db8:42:1::/64") || n.Pool4 != netip.MustParsePrefix("198.18.1.0/24") {
		t.Fatalf("node = %+v", n)
	}
	select {
	case <-c.Changes():
	default:
		t.Fatal("no change poke after create")
	}
	eventually(t, "Accepted=True", func() bool {
		cond, gen := accepted(t, dyn, "node-1")
		return cond != nil && cond.Status == metav1.ConditionTrue && cond.Reason == ReasonValid && cond.ObservedGeneration == 1 && gen == 1
	})
	if cond, _ := accepted(t, dyn, "node-2"); cond != nil {
		t.Errorf("node-2 got a condition from node-1's agent: %+v", cond)
	}

	// Valid by the schema, rejected by the agent: the error reaches Node
	// and the condition.
	if _, err := ncs.Update(ctx, nodeConfig("node-1", 2, map[string]any{"cidr6": "2001:db8:42:1::/64", "cidr4": "198.18.1.0/31"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rejection", func() bool { _, err := c.Node(ctx); return err != nil })
	if _, err := c.Node(ctx); !strings.Contains(err.Error(), "nodeconfig node-1: spec.cidr4") || errors.Is(err, model.ErrNoNodeConfig) {
		t.Errorf("rejected config: %v", err)
	}
	eventually(t, "Accepted=False", func() bool {
		cond, gen := accepted(t, dyn, "node-1")
		return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == ReasonInvalid &&
			strings.Contains(cond.Message, `spec.cidr4 "198.18.1.0/31"`) && cond.ObservedGeneration == 2 && gen == 2
	})

	// An update takes effect without a restart.
	if _, err := ncs.Update(ctx, nodeConfig("node-1", 3, map[string]any{"cidr6": "2001:db8:42:7::/64"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "update", func() bool {
		n, err := c.Node(ctx)
		return err == nil && n.Pool6 == netip.MustParsePrefix("2001:db8:42:7::/64") && !n.Pool4.IsValid()
	})
	eventually(t, "Accepted=True again", func() bool {
		cond, gen := accepted(t, dyn, "node-1")
		return cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == 3 && gen == 3
	})
	// Our own status writes come back as updates; they must not cause more
	// writes. Three generations, three patches.
	time.Sleep(200 * time.Millisecond)
	if n := statusPatches(dyn); n != 3 {
		t.Errorf("%d status patches, want 3", n)
	}

	drain(c.Changes())
	if err := ncs.Delete(ctx, "node-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delete", func() bool { _, err := c.Node(ctx); return errors.Is(err, model.ErrNoNodeConfig) })
	if _, err := c.Node(ctx); err.Error() != "no NodeConfig for node node-1" {
		t.Errorf("after delete: %v", err)
	}
	select {
	case <-c.Changes():
	case <-time.After(5 * time.Second):
		t.Error("no change poke after delete")
	}
}

func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

func TestAcceptance(t *testing.T) {
	withPassword := func(ref map[string]any) map[string]any {
		return map[string]any{"cidr6": "2001:db8:42:1::/64", "bgp": map[string]any{"asn": int64(65101), "peers": []any{
			map[string]any{"address": "2001:db8:42::1", "asn": int64(65000)},
			map[string]any{"address": "2001:db8:42::2", "asn": int64(65000), "passwordSecretRef": ref},
		}}}
	}
	c := NewNodeConfigs(newFakeDynamic(), "node-1", discard)
	c.SetSecretsNamespace("flock-system")
	for _, tc := range []struct {
		name   string
		spec   map[string]any
		status metav1.ConditionStatus
		msg    string
	}{
		{"valid", map[string]any{"cidr6": "2001:db8:42:1::/64", "cidr4": "198.18.1.0/24"}, metav1.ConditionTrue, "uses"},
		{"ipv4 too long", map[string]any{"cidr4": "198.18.1.0/31"}, metav1.ConditionFalse, "longer than /30"},
		{"no pools", map[string]any{}, metav1.ConditionFalse, "neither spec.cidr6 nor spec.cidr4"},
		{"host bits", map[string]any{"cidr6": "2001:db8:42:1::1/64"}, metav1.ConditionFalse, "host bits set"},
		{"wrong type", map[string]any{"cidr6": int64(7)}, metav1.ConditionFalse, "decode nodeconfig node-1"},
		// BGP passwords: only in the agent's namespace.
		{"secret in own namespace, implied", withPassword(map[string]any{"name": "bgp", "key": "k"}), metav1.ConditionTrue, "uses"},
		{"secret in own namespace, named", withPassword(map[string]any{"namespace": "flock-system", "name": "bgp", "key": "k"}), metav1.ConditionTrue, "uses"},
		{"secret in kube-system", withPassword(map[string]any{"namespace": "kube-system", "name": "bgp", "key": "k"}), metav1.ConditionFalse,
			`spec.bgp.peers[1].passwordSecretRef.namespace "kube-system": the agent reads Secrets only in its own namespace "flock-system"`},
		{"secret namespace malformed", withPassword(map[string]any{"namespace": "Kube_System", "name": "bgp", "key": "k"}), metav1.ConditionFalse,
			`spec.bgp.peers[1].passwordSecretRef.namespace "Kube_System": not a namespace name`},
	} {
		c := c.acceptance(nodeConfig("node-1", 4, tc.spec))
		if c.Type != ConditionAccepted || c.Status != tc.status || c.ObservedGeneration != 4 || !strings.Contains(c.Message, tc.msg) {
			t.Errorf("%s: %+v, want status %s with %q", tc.name, c, tc.status, tc.msg)
		}
		if wantReason := map[metav1.ConditionStatus]string{metav1.ConditionTrue: ReasonValid, metav1.ConditionFalse: ReasonInvalid}[tc.status]; c.Reason != wantReason {
			t.Errorf("%s: reason %s, want %s", tc.name, c.Reason, wantReason)
		}
	}
}
