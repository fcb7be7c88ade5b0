package lbipam

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// world is a fake API with one pool of one address, a former LoadBalancer
// (now ClusterIP) still holding it, and a LoadBalancer Service waiting.
func world(t *testing.T) (*fake.Clientset, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	return worldOf(t, v4, "192.0.2.7", "192.0.2.7/32")
}

// worldOf is world with a pool of family fam holding cidr, and ip in the
// former LoadBalancer's status.
func worldOf(t *testing.T, fam corev1.IPFamily, ip, cidr string) (*fake.Clientset, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	vip := corev1.LoadBalancerIPModeVIP
	was := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "was", UID: "u-was", CreationTimestamp: metav1.NewTime(epoch)},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, IPFamilies: []corev1.IPFamily{fam}},
		Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ip, IPMode: &vip}}}},
	}
	next := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "next", UID: "u-next", CreationTimestamp: metav1.NewTime(epoch.Add(time.Minute))},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{fam}},
	}
	cs := fake.NewClientset(was, next, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}})
	p := sap("one", 0, cidr)
	p.TypeMeta = metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.ServiceAddressPoolKind}
	u, err := toUnstructured(p)
	if err != nil {
		t.Fatal(err)
	}
	gvk := func(kind string) schema.GroupVersionKind { return v1alpha1.SchemeGroupVersion.WithKind(kind) }
	sch := runtime.NewScheme()
	for _, k := range []string{v1alpha1.ServiceAddressPoolKind, v1alpha1.NodeConfigKind, v1alpha1.NodePoolKind} {
		sch.AddKnownTypeWithName(gvk(k), &unstructured.Unstructured{})
		sch.AddKnownTypeWithName(gvk(k+"List"), &unstructured.UnstructuredList{})
	}
	dc := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(sch, map[schema.GroupVersionResource]string{
		v1alpha1.ServiceAddressPoolGVR: v1alpha1.ServiceAddressPoolKind + "List",
		v1alpha1.NodeConfigGVR:         v1alpha1.NodeConfigKind + "List",
		v1alpha1.NodePoolGVR:           v1alpha1.NodePoolKind + "List",
	}, u)
	return cs, dc
}

// statusWrites records the Services' status updates in order, failing
// those of fail.
func statusWrites(cs *fake.Clientset, fail string) func() []string {
	var mu sync.Mutex
	var order []string
	cs.PrependReactor("update", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" {
			return false, nil, nil
		}
		s := a.(k8stesting.UpdateAction).GetObject().(*corev1.Service)
		mu.Lock()
		defer mu.Unlock()
		order = append(order, s.Name)
		if s.Name == fail {
			return true, nil, errors.New("injected failure")
		}
		return false, nil, nil
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), order...)
	}
}

func run(t *testing.T, cs *fake.Clientset, dc *dynamicfake.FakeDynamicClient) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	c := New(Options{Kube: cs, Dynamic: dc, Log: slog.New(slog.DiscardHandler), Resync: time.Hour})
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

// The address leaves the former LoadBalancer's status before the waiting
// Service's gets it.
func TestReleaseWrittenBeforeGrant(t *testing.T) {
	cs, dc := world(t)
	writes := statusWrites(cs, "")
	run(t, cs, dc)
	waitUntil(t, "both status writes", func() bool { return len(writes()) >= 2 })
	if w := writes(); w[0] != "was" || w[1] != "next" {
		t.Fatalf("status writes %v, want was (release) before next (grant)", w)
	}
	s, err := cs.CoreV1().Services("a").Get(context.Background(), "next", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in := s.Status.LoadBalancer.Ingress; len(in) != 1 || in[0].IP != "192.0.2.7" || *in[0].IPMode != corev1.LoadBalancerIPModeVIP {
		t.Errorf("next's ingress %+v, want 192.0.2.7 VIP", in)
	}
	waitUntil(t, "the pool's status", func() bool {
		u, err := dc.Resource(v1alpha1.ServiceAddressPoolGVR).Get(context.Background(), "one", metav1.GetOptions{})
		if err != nil {
			return false
		}
		used, _, _ := unstructured.NestedInt64(u.Object, "status", "ipv4", "used")
		return used == 1
	})
}

// While the release cannot be written, the address is given to no one
// (the controller retries).
func TestNoGrantWhileReleaseFails(t *testing.T) {
	cs, dc := world(t)
	writes := statusWrites(cs, "was")
	run(t, cs, dc)
	waitUntil(t, "two attempts at the release", func() bool { return len(writes()) >= 2 })
	for _, w := range writes() {
		if w != "was" {
			t.Fatalf("status writes %v: %s written while the release failed", writes(), w)
		}
	}
}

// A release that cannot be written holds back only the grant of its own
// address: a Service waiting for an address of another pool gets it.
func TestFailedReleaseHoldsBackOnlyItsAddress(t *testing.T) {
	cs, dc := world(t)
	later := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "later", UID: "u-later", CreationTimestamp: metav1.NewTime(epoch.Add(2 * time.Minute))},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{v4}},
	}
	if _, err := cs.CoreV1().Services("a").Create(context.Background(), later, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := sap("two", 1, "198.51.100.1/32")
	p.TypeMeta = metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.ServiceAddressPoolKind}
	u, err := toUnstructured(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.Resource(v1alpha1.ServiceAddressPoolGVR).Create(context.Background(), u, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	writes := statusWrites(cs, "was")
	run(t, cs, dc)
	waitUntil(t, "later's grant", func() bool { return slices.Contains(writes(), "later") })
	if w := writes(); slices.Contains(w, "next") {
		t.Errorf("status writes %v: next got 192.0.2.7 while its release from was failed", w)
	}
	s, err := cs.CoreV1().Services("a").Get(context.Background(), "later", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in := s.Status.LoadBalancer.Ingress; len(in) != 1 || in[0].IP != "198.51.100.1" {
		t.Errorf("later's ingress %+v, want 198.51.100.1", in)
	}
}

// A Warning that stays true is recorded once, not on every resync.
func TestWarningOncePerCondition(t *testing.T) {
	cs, dc := world(t)
	// A third Service the one-address pool cannot serve.
	late := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "late", UID: "u-late", CreationTimestamp: metav1.NewTime(epoch.Add(2 * time.Minute))},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{v4}},
	}
	if _, err := cs.CoreV1().Services("a").Create(context.Background(), late, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	warnings := 0
	// The recorder sends a repeat as a patch of the first Event's count.
	cs.PrependReactor("*", "events", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		switch a := a.(type) {
		case k8stesting.CreateAction:
			if e, ok := a.GetObject().(*corev1.Event); ok && e.Reason == ReasonPoolExhausted {
				warnings++
			}
		case k8stesting.PatchAction:
			warnings++
		}
		return false, nil, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := New(Options{Kube: cs, Dynamic: dc, Log: slog.New(slog.DiscardHandler), Resync: 20 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitUntil(t, "the exhausted Warning", func() bool { mu.Lock(); defer mu.Unlock(); return warnings > 0 })
	time.Sleep(500 * time.Millisecond) // some 25 resyncs
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if warnings != 1 {
		t.Errorf("%d %s Events over 25 resyncs of the same condition, want 1", warnings, ReasonPoolExhausted)
	}
}

// An address in a status in another spelling (2001:DB8::7, as a restored
// backup or another tool may write it) is the same address: its grant
// waits for its release all the same.
func TestNoGrantWhileReleaseFailsOtherSpelling(t *testing.T) {
	cs, dc := worldOf(t, v6, "2001:DB8::7", "2001:db8::7/128")
	writes := statusWrites(cs, "was")
	run(t, cs, dc)
	waitUntil(t, "two attempts at the release", func() bool { return len(writes()) >= 2 })
	for _, w := range writes() {
		if w != "was" {
			t.Fatalf("status writes %v: %s written while the release failed", writes(), w)
		}
	}
}

// The controller reads the cluster's ServiceCIDRs: a pool inside one hands
// out nothing.
func TestServiceCIDRWatched(t *testing.T) {
	cs, dc := world(t)
	sc := &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"192.0.2.0/24"}}}
	if _, err := cs.NetworkingV1().ServiceCIDRs().Create(context.Background(), sc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	run(t, cs, dc)
	waitUntil(t, "pool one's ServiceCIDROverlap", func() bool {
		u, err := dc.Resource(v1alpha1.ServiceAddressPoolGVR).Get(context.Background(), "one", metav1.GetOptions{})
		if err != nil {
			return false
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		return len(conds) == 1 && conds[0].(map[string]any)["reason"] == v1alpha1.ReasonServiceCIDROverlap
	})
	s, err := cs.CoreV1().Services("a").Get(context.Background(), "next", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in := s.Status.LoadBalancer.Ingress; len(in) != 0 {
		t.Errorf("next got %+v from a pool inside the Service range", in)
	}
}
