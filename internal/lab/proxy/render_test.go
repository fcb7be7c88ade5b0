package proxy

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/fritzlab/flock/pkg/policy"
)

func pod(ns, name string, ready bool, labels map[string]string, ips ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}}
	p.Spec.Containers = []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{
		{Name: "web", ContainerPort: 8080},
		{Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
	}}}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	return p
}

func service(ns, name string, sel map[string]string, clusterIPs []string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Selector: sel, ClusterIPs: clusterIPs, Ports: ports},
	}
}

func TestFrontends(t *testing.T) {
	app := map[string]string{"app": "web"}
	deleting := pod("x", "gone", true, app, "10.0.0.9")
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	pods := []*corev1.Pod{
		pod("x", "b", true, app, "2001:db8::b", "10.0.0.2"),
		pod("x", "a", true, app, "2001:db8::a", "10.0.0.1"),
		pod("x", "notready", false, app, "10.0.0.3"),
		pod("x", "v6only", true, app, "2001:db8::6"),
		pod("y", "othernamespace", true, app, "10.0.1.1"),
		pod("x", "otherlabels", true, map[string]string{"app": "db"}, "10.0.0.4"),
		deleting,
	}
	services := []*corev1.Service{
		service("x", "web", app, []string{"198.19.255.10", "2001:db8:5e5::10"},
			corev1.ServicePort{Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromString("web")},
			corev1.ServicePort{Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromString("dns")},
			corev1.ServicePort{Protocol: corev1.ProtocolUDP, Port: 54, TargetPort: intstr.FromString("web")}, // no UDP port named web
		),
		service("x", "headless", app, []string{"None"}, corev1.ServicePort{Protocol: corev1.ProtocolTCP, Port: 80}),
		service("x", "manual", nil, []string{"198.19.255.11"}, corev1.ServicePort{Protocol: corev1.ProtocolTCP, Port: 80}),
		service("x", "numeric", map[string]string{"app": "db"}, []string{"198.19.255.12"},
			corev1.ServicePort{Protocol: corev1.ProtocolTCP, Port: 80},
			corev1.ServicePort{Protocol: corev1.ProtocolTCP, Port: 81, TargetPort: intstr.FromInt32(9000)}),
	}
	ep := func(p, a string, port uint16) Endpoint {
		return Endpoint{Pod: p, Addr: netip.MustParseAddr(a), Port: port}
	}
	vip := netip.MustParseAddr
	want := []Frontend{
		{"x/numeric", vip("198.19.255.12"), corev1.ProtocolTCP, 80, []Endpoint{ep("x/otherlabels", "10.0.0.4", 80)}},
		{"x/numeric", vip("198.19.255.12"), corev1.ProtocolTCP, 81, []Endpoint{ep("x/otherlabels", "10.0.0.4", 9000)}},
		{"x/web", vip("198.19.255.10"), corev1.ProtocolTCP, 80, []Endpoint{ep("x/a", "10.0.0.1", 8080), ep("x/b", "10.0.0.2", 8080)}},
		{"x/web", vip("2001:db8:5e5::10"), corev1.ProtocolTCP, 80, []Endpoint{ep("x/a", "2001:db8::a", 8080), ep("x/b", "2001:db8::b", 8080), ep("x/v6only", "2001:db8::6", 8080)}},
		{"x/web", vip("198.19.255.10"), corev1.ProtocolUDP, 53, []Endpoint{ep("x/a", "10.0.0.1", 5353), ep("x/b", "10.0.0.2", 5353)}},
		{"x/web", vip("2001:db8:5e5::10"), corev1.ProtocolUDP, 53, []Endpoint{ep("x/a", "2001:db8::a", 5353), ep("x/b", "2001:db8::b", 5353), ep("x/v6only", "2001:db8::6", 5353)}},
		{"x/web", vip("198.19.255.10"), corev1.ProtocolUDP, 54, nil},
		{"x/web", vip("2001:db8:5e5::10"), corev1.ProtocolUDP, 54, nil},
	}
	if d := cmp.Diff(want, Frontends(services, pods), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("Frontends (-want +got):\n%s", d)
	}
}

// TestRenderCheck: the rendered table is one nft accepts, and a frontend
// without endpoints gets no entry.
func TestRenderCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("nft --check needs root")
	}
	fronts := []Frontend{
		{"x/web", netip.MustParseAddr("198.19.255.10"), corev1.ProtocolTCP, 80, []Endpoint{{"x/a", netip.MustParseAddr("10.0.0.1"), 8080}, {"x/b", netip.MustParseAddr("10.0.0.2"), 8080}}},
		{"x/web", netip.MustParseAddr("2001:db8:5e5::10"), corev1.ProtocolUDP, 53, []Endpoint{{"x/a", netip.MustParseAddr("2001:db8::a"), 5353}}},
		{"x/none", netip.MustParseAddr("198.19.255.11"), corev1.ProtocolTCP, 80, nil},
	}
	script := Render(fronts)
	if _, err := (policy.NFT{}).Run(context.Background(), script, "--check", "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, script)
	}
	s := string(script)
	for _, want := range []string{
		"198.19.255.10 . tcp . 80 : goto svc_0",
		"2001:db8:5e5::10 . udp . 53 : goto svc_1",
		"numgen random mod 2 vmap { 0 : goto svc_0_0, 1 : goto svc_0_1 }",
		"meta l4proto tcp dnat ip to 10.0.0.2:8080",
		"meta l4proto udp dnat ip6 to [2001:db8::a]:5353",
		"ip6 saddr 2001:db8::a meta mark set meta mark | 0x4000",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the script lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "198.19.255.11") {
		t.Errorf("a frontend without endpoints has an entry:\n%s", s)
	}
}
