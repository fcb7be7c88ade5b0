package kube

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/fritzlab/flock/api/v1alpha1"
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
