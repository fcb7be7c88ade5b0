package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/kube/apiclient/apiclientfake"
)

// The BGP controller's condition lands next to Accepted, once per change,
// and one reported without a generation takes the object's.
func TestBGPCondition(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dyn := newFakeDynamic()
	c := NewNodeConfigs(dyn, "node-1", discard)
	go c.Run(ctx)
	eventually(t, "sync", c.HasSynced)
	if _, err := dyn.Resource(NodeConfigResource).Create(ctx, nodeConfig("node-1", 4, map[string]any{"cidr6": "2001:db8:42:1::/64"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Accepted=True", func() bool { cond, _ := accepted(t, dyn, "node-1"); return cond != nil })
	bgp := func() *metav1.Condition {
		u, err := dyn.Resource(NodeConfigResource).Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return meta.FindStatusCondition(conditions(u), v1alpha1.ConditionBGPConfigured)
	}

	c.SetBGPCondition(true, v1alpha1.ReasonConfigured, "bird runs the config (BGP peers: 1)", 4)
	eventually(t, "BGPConfigured=True", func() bool {
		b := bgp()
		return b != nil && b.Status == metav1.ConditionTrue && b.Reason == v1alpha1.ReasonConfigured && b.ObservedGeneration == 4
	})
	patches := statusPatches(dyn)
	c.SetBGPCondition(true, v1alpha1.ReasonConfigured, "bird runs the config (BGP peers: 1)", 4)
	time.Sleep(200 * time.Millisecond)
	if n := statusPatches(dyn); n != patches {
		t.Errorf("%d status patches for an unchanged condition", n-patches)
	}

	c.SetBGPCondition(false, v1alpha1.ReasonInvalid, `nodeconfig node-1: spec.bgp.peers[0].holdTime 2: must be 0`, 0)
	eventually(t, "BGPConfigured=False", func() bool {
		b := bgp()
		return b != nil && b.Status == metav1.ConditionFalse && b.Reason == v1alpha1.ReasonInvalid &&
			strings.Contains(b.Message, "spec.bgp.peers[0].holdTime") && b.ObservedGeneration == 4
	})
	if cond, gen := accepted(t, dyn, "node-1"); cond == nil || cond.Status != metav1.ConditionTrue || gen != 4 {
		t.Errorf("Accepted changed with BGPConfigured: %+v, observedGeneration %d", cond, gen)
	}
}

func TestSecrets(t *testing.T) {
	client := apiclientfake.New(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "bgp", Labels: map[string]string{v1alpha1.LabelBGPPassword: "true"}},
		Data:       map[string][]byte{"router": []byte("s3cret")},
	}, &corev1.Secret{
		// In the namespace, but not meant for flock (a Helm release, say).
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "other", Labels: map[string]string{v1alpha1.LabelBGPPassword: "yes"}},
		Data:       map[string][]byte{"router": []byte("not for flock")},
	})
	s := NewSecrets(client, "kube-system")
	if v, err := s.Value(t.Context(), "other", "router"); err == nil || v != "" ||
		err.Error() != "secret kube-system/other is not labelled flock.fritzlab.net/bgp-password=true: the agent uses only Secrets meant for it" {
		t.Errorf("unlabelled secret: %q, %v", v, err)
	}
	if v, err := s.Value(t.Context(), "bgp", "router"); err != nil || v != "s3cret" {
		t.Errorf("bgp/router = %q, %v", v, err)
	}
	if _, err := s.Value(t.Context(), "bgp", "other"); err == nil || err.Error() != `secret kube-system/bgp has no key "other"` {
		t.Errorf("missing key: %v", err)
	}
	if _, err := s.Value(t.Context(), "nope", "router"); err == nil || !strings.Contains(err.Error(), "read secret kube-system/nope") {
		t.Errorf("missing secret: %v", err)
	}
	if _, err := NewSecrets(client, "default").Value(t.Context(), "bgp", "router"); err == nil {
		t.Errorf("read a Secret of another namespace")
	}
}
