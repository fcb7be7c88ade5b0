package kube

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/utils/ptr"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/kube/apiclient/apiclientfake"
	"github.com/fritzlab/flock/pkg/lbannounce"
	"github.com/fritzlab/flock/pkg/model"
)

var cmpAddrs = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestStripService(t *testing.T) {
	in := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo", UID: "u1", ResourceVersion: "7",
			Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096)},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			LoadBalancerClass: ptr.To(v1alpha1.LoadBalancerClass), Ports: []corev1.ServicePort{{Port: 80}}, ClusterIP: "10.96.0.10"},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
			{IP: "192.0.2.10"}, {IP: "2001:db8:5::10"}, {Hostname: "lb.example"}, {IP: "192.0.2.10"}, {IP: "bogus"},
		}}},
	}
	got, err := StripService(in)
	if err != nil {
		t.Fatal(err)
	}
	want := &LBService{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo", UID: "u1", ResourceVersion: "7"},
		Service: lbannounce.Service{Namespace: "demo", Name: "web", LoadBalancer: true, Local: true, Class: v1alpha1.LoadBalancerClass,
			Ingress: []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8:5::10")}},
	}
	if d := cmp.Diff(want, got, cmpAddrs); d != "" {
		t.Errorf("StripService (-want +got):\n%s", d)
	}
	in.Spec.LoadBalancerClass = ptr.To("example.com/other")
	got, _ = StripService(in)
	if r := got.(*LBService); r.Service.Ingress != nil {
		t.Errorf("a Service of another class keeps its ingress %v", r.Service.Ingress)
	}
	in.Spec.LoadBalancerClass = nil
	in.Spec.Type = corev1.ServiceTypeClusterIP
	got, _ = StripService(in)
	if r := got.(*LBService); r.Service.LoadBalancer || r.Service.Ingress != nil {
		t.Errorf("a ClusterIP Service keeps %+v", r.Service)
	}
}

func TestCountEndpoints(t *testing.T) {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Namespace: "demo", UID: "u2", ResourceVersion: "9",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web", "endpointslice.kubernetes.io/managed-by": "x"}},
		AddressType: discoveryv1.AddressTypeIPv6,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"2001:db8:42:1::a"}, NodeName: ptr.To("node-1"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"2001:db8:42:1::b"}, NodeName: ptr.To("node-1")}, // unset: ready
			{Addresses: []string{"2001:db8:42:1::c"}, NodeName: ptr.To("node-1"),
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}},
			{Addresses: []string{"2001:db8:42:2::a"}, NodeName: ptr.To("node-2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"2001:db8:42:2::b"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
		},
	}
	got, err := CountEndpoints(es, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	want := &EndpointCounts{ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Namespace: "demo", UID: "u2", ResourceVersion: "9"},
		Service: "web", AddressType: discoveryv1.AddressTypeIPv6, Local: 2, Ready: 4}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("CountEndpoints (-want +got):\n%s", d)
	}
	es.AddressType = discoveryv1.AddressTypeFQDN
	if got, _ := CountEndpoints(es, "node-1"); got.(*EndpointCounts).Ready != 0 {
		t.Errorf("an FQDN slice counts %+v", got)
	}
}

func TestStripServiceAddressPool(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flock.fritzlab.net/v1alpha1", "kind": "ServiceAddressPool",
		"metadata": map[string]any{"name": "web", "uid": "u3", "resourceVersion": "3", "creationTimestamp": "2026-12-01T00:00:00Z"},
		"spec":     map[string]any{"cidrs": []any{"2001:db8:5::/112"}, "communities": []any{"65000:5"}, "autoAssign": true},
		"status":   map[string]any{"ipv6": map[string]any{"used": int64(1)}},
	}}
	got, err := StripServiceAddressPool(u)
	if err != nil {
		t.Fatal(err)
	}
	p := got.(*AddressPool)
	want := lbannounce.Pool{Name: "web", CIDRs: []netip.Prefix{netip.MustParsePrefix("2001:db8:5::/112")}, Communities: []model.Community{{ASN: 65000, Value: 5}}}
	if d := cmp.Diff(want, p.Pool, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" || p.Err != "" || p.Name != "web" || p.CreationTimestamp.IsZero() {
		t.Errorf("StripServiceAddressPool = %+v (-want +got):\n%s", p, d)
	}
	u.Object["spec"] = map[string]any{"cidrs": []any{"2001:db8:5::1/112"}}
	got, _ = StripServiceAddressPool(u)
	if e := got.(*AddressPool).Err; !strings.Contains(e, `serviceaddresspool web: spec.cidrs[0] "2001:db8:5::1/112": host bits set`) {
		t.Errorf("a bad pool's error = %q", e)
	}
}

// Services sums the Ready endpoints of a Service's slices per family, keeps
// only Services of type LoadBalancer and valid pools (oldest first), and
// pokes for changes that matter only.
func TestServicesSnapshot(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lb := func(name, ip string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name},
			Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ip}}}}}
	}
	es := func(name, svc string, nodes ...string) *discoveryv1.EndpointSlice {
		s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, AddressType: discoveryv1.AddressTypeIPv6}
		for _, n := range nodes {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{"2001:db8::1"}, NodeName: ptr.To(n)})
		}
		return s
	}
	plain := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "plain"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}}
	client := apiclientfake.New(lb("web", "2001:db8:5::10"), plain,
		es("web-a", "web", "node-1", "node-2"), es("web-b", "web", "node-1"), es("plain-a", "plain", "node-1"))
	pool := func(name, created, cidr string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "flock.fritzlab.net/v1alpha1", "kind": "ServiceAddressPool",
			"metadata": map[string]any{"name": name, "creationTimestamp": created},
			"spec":     map[string]any{"cidrs": []any{cidr}},
		}}
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{v1alpha1.ServiceAddressPoolGVR: "ServiceAddressPoolList"},
		pool("young", "2026-12-02T00:00:00Z", "2001:db8:5::/112"), pool("old", "2026-12-01T00:00:00Z", "2001:db8:6::/112"),
		pool("bad", "2026-11-01T00:00:00Z", "2001:db8:7::1/112"))
	s := NewServices(client, dyn, "node-1", discard)
	go s.Run(ctx)
	eventually(t, "the caches synced", s.HasSynced)
	drain := func() {
		select {
		case <-s.Changes():
		default:
		}
	}
	svcs, eps, pools := s.Snapshot()
	if len(svcs) != 1 || svcs[0].Name != "web" {
		t.Errorf("services %+v, want demo/web only", svcs)
	}
	if got := eps["demo/web"]; got.IPv6 != (lbannounce.Counts{Local: 2, Ready: 3}) || got.IPv4 != (lbannounce.Counts{}) {
		t.Errorf("endpoints of demo/web = %+v, want 2 local of 3 ready (IPv6)", got)
	}
	if len(pools) != 2 || pools[0].Name != "old" || pools[1].Name != "young" {
		t.Errorf("pools %+v, want old then young (bad refused)", pools)
	}

	// A ClusterIP Service's slice changing does not poke; a LoadBalancer
	// Service's endpoint going NotReady does.
	drain()
	p := es("plain-a", "plain", "node-2")
	if _, err := client.DiscoveryV1().EndpointSlices("demo").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ClusterIP Service's slice updated in the cache", func() bool {
		o, ok, _ := s.slices.GetStore().GetByKey("demo/plain-a")
		return ok && o.(*EndpointCounts).Local == 0
	})
	select {
	case <-s.Changes():
		t.Errorf("a ClusterIP Service's slice poked")
	default:
	}
	w := es("web-b", "web", "node-1")
	w.Endpoints[0].Conditions.Ready = ptr.To(false)
	if _, err := client.DiscoveryV1().EndpointSlices("demo").Update(ctx, w, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a poke for demo/web's endpoint", func() bool {
		select {
		case <-s.Changes():
			return true
		default:
			return false
		}
	})
	eventually(t, "demo/web's endpoint NotReady in the snapshot", func() bool {
		_, eps, _ := s.Snapshot()
		return eps["demo/web"].IPv6 == lbannounce.Counts{Local: 1, Ready: 2}
	})
}
