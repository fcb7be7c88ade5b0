package kube

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/pkg/kube/apiclient/apiclientfake"
	"github.com/fritzlab/flock/pkg/policy"
)

// clusterPod is a running pod with labels, addresses and container ports.
func clusterPod(ns, name, uid, node string, labels map[string]string, ips ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), Labels: labels, ResourceVersion: "1"},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name: "serve", Image: "i",
			Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP},
				{ContainerPort: 9000, Protocol: corev1.ProtocolTCP}, // unnamed: not needed
				{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
			},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	return p
}

func TestStripPolicyPod(t *testing.T) {
	in := clusterPod("x", "a", "u1", "node-1", map[string]string{"pod": "a"}, "2001:db8::a", "10.0.0.10")
	in.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096)}
	in.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	in.Spec.Containers = append(in.Spec.Containers, corev1.Container{Name: "sidecar", Image: "j"})
	in.Spec.Volumes = []corev1.Volume{{Name: "v"}}
	in.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	got, err := StripPolicyPod(in)
	if err != nil {
		t.Fatal(err)
	}
	want := &PolicyPod{
		ResourceVersion: "1",
		Pod: policy.Pod{Namespace: "x", Name: "a", UID: "u1", Labels: map[string]string{"pod": "a"}, Node: "node-1",
			IPs:   []netip.Addr{netip.MustParseAddr("2001:db8::a"), netip.MustParseAddr("10.0.0.10")},
			Ports: []policy.ContainerPort{{Name: "http", Protocol: policy.TCP, Port: 80}, {Name: "dns", Protocol: policy.UDP, Port: 53}}},
		Applies: true,
	}
	if d := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{}), cmpopts.IgnoreUnexported(PolicyPod{})); d != "" {
		t.Errorf("StripPolicyPod (-want +got):\n%s", d)
	}
	// The cache keys and indexes the record by the pod's identity.
	if key, err := cache.MetaNamespaceKeyFunc(got); err != nil || key != "x/a" {
		t.Errorf("key of the record = %q, %v; want x/a", key, err)
	}
	if m, err := meta.Accessor(got); err != nil || m.GetUID() != "u1" || m.GetResourceVersion() != "1" {
		t.Errorf("meta.Accessor of the record = %v, %v", m, err)
	}
	ns, _ := StripNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"c": "d"}}})
	if d := cmp.Diff(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{"a": "b"}}}, ns); d != "" {
		t.Errorf("StripNamespace (-want +got):\n%s", d)
	}
	np, _ := StripNetworkPolicy(&networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "p", Annotations: map[string]string{"c": "d"}, ManagedFields: []metav1.ManagedFieldsEntry{{}}},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	})
	if d := cmp.Diff(&networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "p"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}, np); d != "" {
		t.Errorf("StripNetworkPolicy (-want +got):\n%s", d)
	}
	for _, s := range []func(any) (any, error){StripPolicyPod, StripNamespace, StripNetworkPolicy} {
		if o, _ := s("tombstone"); o != "tombstone" {
			t.Error("a transform changed a non-object")
		}
	}
}

func TestPolicyPod(t *testing.T) {
	p := clusterPod("x", "a", "u1", "node-1", map[string]string{"pod": "a"}, "2001:db8::a", "10.0.0.10", "bogus")
	got, ok := policyPod(p)
	want := policy.Pod{
		Namespace: "x", Name: "a", UID: "u1", Labels: map[string]string{"pod": "a"}, Node: "node-1",
		IPs:   []netip.Addr{netip.MustParseAddr("2001:db8::a"), netip.MustParseAddr("10.0.0.10")},
		Ports: []policy.ContainerPort{{Name: "http", Protocol: policy.TCP, Port: 80}, {Name: "dns", Protocol: policy.UDP, Port: 53}},
	}
	if d := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); !ok || d != "" {
		t.Errorf("policyPod = %v (-want +got):\n%s", ok, d)
	}
	for name, mut := range map[string]func(*corev1.Pod){
		"host network": func(p *corev1.Pod) { p.Spec.HostNetwork = true },
		"succeeded":    func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded },
		"failed":       func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed },
	} {
		q := p.DeepCopy()
		mut(q)
		if _, ok := policyPod(q); ok {
			t.Errorf("%s pod is used for policy", name)
		}
	}
	// Pending and terminating pods still count: they may hold addresses.
	q := p.DeepCopy()
	q.Status.Phase = corev1.PodPending
	now := metav1.Now()
	q.DeletionTimestamp = &now
	if _, ok := policyPod(q); !ok {
		t.Error("a pending, terminating pod is left out")
	}
}

// TestCluster runs the informers against a fake API: Input has what they
// list; a change that matters pokes Changes, one that does not (a status
// condition, an annotation) does not.
func TestCluster(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client := apiclientfake.New(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x", UID: "nsx", Labels: map[string]string{"team": "a"}}},
		clusterPod("x", "a", "u1", "node-1", map[string]string{"pod": "a"}, "2001:db8::a"),
		&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "deny", UID: "np1"}},
	)
	c := NewCluster(client)
	go c.Run(ctx)
	eventually(t, "sync", c.HasSynced)
	in := c.Input(nil)
	if len(in.Policies) != 1 || len(in.Namespaces) != 1 || len(in.Pods) != 1 || in.Pods[0].Labels["pod"] != "a" || in.Namespaces[0].Labels["team"] != "a" {
		t.Fatalf("Input = %+v", in)
	}
	drain(c.Changes())

	pods := client.CoreV1().Pods("x")
	nss := client.CoreV1().Namespaces()
	nps := client.NetworkingV1().NetworkPolicies("x")
	for _, step := range []struct {
		what  string
		do    func() error
		pokes bool
	}{
		{"pod ready condition", func() error {
			p, _ := pods.Get(ctx, "a", metav1.GetOptions{})
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			_, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
			return err
		}, false},
		{"pod annotation", func() error {
			p, _ := pods.Get(ctx, "a", metav1.GetOptions{})
			p.Annotations = map[string]string{"x": "y"}
			_, err := pods.Update(ctx, p, metav1.UpdateOptions{})
			return err
		}, false},
		{"pod label", func() error {
			p, _ := pods.Get(ctx, "a", metav1.GetOptions{})
			p.Labels["tier"] = "web"
			_, err := pods.Update(ctx, p, metav1.UpdateOptions{})
			return err
		}, true},
		{"pod address", func() error {
			p, _ := pods.Get(ctx, "a", metav1.GetOptions{})
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: "10.0.0.10"})
			_, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
			return err
		}, true},
		{"new pod", func() error {
			_, err := pods.Create(ctx, clusterPod("x", "b", "u2", "node-2", nil), metav1.CreateOptions{})
			return err
		}, true},
		{"namespace annotation", func() error {
			n, _ := nss.Get(ctx, "x", metav1.GetOptions{})
			n.Annotations = map[string]string{"x": "y"}
			_, err := nss.Update(ctx, n, metav1.UpdateOptions{})
			return err
		}, false},
		{"namespace label", func() error {
			n, _ := nss.Get(ctx, "x", metav1.GetOptions{})
			n.Labels["env"] = "prod"
			_, err := nss.Update(ctx, n, metav1.UpdateOptions{})
			return err
		}, true},
		{"policy annotation", func() error {
			p, _ := nps.Get(ctx, "deny", metav1.GetOptions{})
			p.Annotations = map[string]string{"x": "y"}
			_, err := nps.Update(ctx, p, metav1.UpdateOptions{})
			return err
		}, false},
		{"policy spec", func() error {
			p, _ := nps.Get(ctx, "deny", metav1.GetOptions{})
			p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
			_, err := nps.Update(ctx, p, metav1.UpdateOptions{})
			return err
		}, true},
		{"policy deleted", func() error { return nps.Delete(ctx, "deny", metav1.DeleteOptions{}) }, true},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.what, err)
		}
		if got := poked(c.Changes(), step.pokes); got != step.pokes {
			t.Errorf("%s: poked %v, want %v", step.what, got, step.pokes)
		}
	}
	in = c.Input(nil)
	slices.SortFunc(in.Pods, func(a, b policy.Pod) int { return strings.Compare(a.Name, b.Name) })
	if len(in.Policies) != 0 || len(in.Pods) != 2 || in.Pods[0].Labels["tier"] != "web" || len(in.Pods[0].IPs) != 2 || in.Namespaces[0].Labels["env"] != "prod" {
		t.Errorf("Input after the changes = %+v", in)
	}
}

// poked waits for a poke: briefly when none is expected (the informer
// delivers within milliseconds), longer when one is.
func poked(ch <-chan struct{}, expect bool) bool {
	wait := 300 * time.Millisecond
	if expect {
		wait = 10 * time.Second
	}
	select {
	case <-ch:
		return true
	case <-time.After(wait):
		return false
	}
}

// TestClusterPod: a pod in the cache costs no API call; one the cache
// lacks, or holds in an earlier incarnation, is fetched.
func TestClusterPod(t *testing.T) {
	ctx := context.Background()
	client := apiclientfake.New(
		clusterPod("x", "new", "u-api", "node-1", map[string]string{"pod": "new"}),
		clusterPod("x", "again", "u-new", "node-1", map[string]string{"v": "2"}),
	)
	c := NewCluster(client) // not running: the test fills the cache
	for _, p := range []*corev1.Pod{
		clusterPod("x", "cached", "u-c", "node-1", map[string]string{"pod": "cached"}),
		clusterPod("x", "again", "u-old", "node-1", map[string]string{"v": "1"}),
	} {
		o, _ := StripPolicyPod(p)
		if err := c.pods.GetIndexer().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, uid string
		label     string
		gets      int
	}{
		{"cached", "u-c", "cached", 0},
		{"cached", "", "cached", 0},
		{"new", "u-api", "new", 1},
		{"again", "u-new", "2", 1},
	} {
		client.ClearActions()
		got, err := c.Pod(ctx, "x", tc.name, tc.uid)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if l := got.Labels["pod"] + got.Labels["v"]; l != tc.label || len(got.Ports) != 2 {
			t.Errorf("%s: got %+v", tc.name, got)
		}
		if n := len(client.Actions()); n != tc.gets {
			t.Errorf("%s: %d API calls, want %d", tc.name, n, tc.gets)
		}
	}
	if _, err := c.Pod(ctx, "x", "gone", ""); err == nil || !strings.Contains(err.Error(), "x/gone") {
		t.Errorf("missing pod: %v", err)
	}
}
