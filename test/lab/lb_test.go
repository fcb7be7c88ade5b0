package lab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab"
	"github.com/fritzlab/flock/pkg/leader"
)

// lbPort is the port LoadBalancer Services of these tests listen on; the
// backends serve lbTarget.
const lbPort, lbTarget = 80, 8080

// lbBackend is a pod serving TCP on lbTarget with the label app=app, Ready
// while the file down does not exist.
func lbBackend(name, node, app, down string) *corev1.Pod {
	p := anycastPod(name, node, "", down, lbTarget)
	p.Annotations = nil
	p.Labels = map[string]string{"app": app}
	return p
}

// lbService is a dual-stack Service of type LoadBalancer selecting app=app.
func lbService(name, app string, policy corev1.ServiceExternalTrafficPolicy, annotations map[string]string) *corev1.Service {
	dual := corev1.IPFamilyPolicyRequireDualStack
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: annotations},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			Selector:              map[string]string{"app": app},
			IPFamilyPolicy:        &dual,
			IPFamilies:            []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol},
			ExternalTrafficPolicy: policy,
			Ports: []corev1.ServicePort{{
				Name: "tcp", Protocol: corev1.ProtocolTCP, Port: lbPort, TargetPort: intstr.FromInt(lbTarget),
			}},
		},
	}
}

func (e *env) createService(s *corev1.Service) {
	e.t.Helper()
	if _, err := e.cs.CoreV1().Services(s.Namespace).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create service %s/%s: %v", s.Namespace, s.Name, err)
	}
}

// ingress is the Service's status.loadBalancer.ingress addresses, IPv6
// first.
func (e *env) ingress(ns, name string) ([]netip.Addr, error) {
	s, err := e.cs.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, in := range s.Status.LoadBalancer.Ingress {
		a, err := netip.ParseAddr(in.IP)
		if err != nil {
			return nil, fmt.Errorf("ingress %q: %w", in.IP, err)
		}
		out = append(out, a)
	}
	if len(out) == 2 && out[0].Is4() {
		out[0], out[1] = out[1], out[0]
	}
	return out, nil
}

// waitIngress waits until the Service has n ingress addresses and returns
// them.
func (e *env) waitIngress(ns, name string, n int) []netip.Addr {
	e.t.Helper()
	var got []netip.Addr
	waitFor(e.t, 60*time.Second, fmt.Sprintf("%d ingress addresses on %s/%s", n, ns, name), func() (bool, string) {
		var err error
		got, err = e.ingress(ns, name)
		if err != nil {
			return false, err.Error()
		}
		return len(got) == n, fmt.Sprint(got)
	})
	return got
}

// serviceWarnings are the Warning Events on a Service, as "reason: message".
func (e *env) serviceWarnings(ns, name string) []string {
	evs, err := e.cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Service,involvedObject.name=" + name,
	})
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, ev := range evs.Items {
		if ev.Type == corev1.EventTypeWarning {
			out = append(out, ev.Reason+": "+ev.Message)
		}
	}
	return out
}

// routerAsk connects from the router's namespace (outside the cluster) to
// addr:port and returns what the server said.
func (e *env) routerAsk(addr netip.Addr, port int) (string, error) {
	out, err := inNetns(e.lab.Router, "nc", "-w", "3", addr.String(), fmt.Sprint(port))
	return strings.TrimSpace(out), err
}

// waitServed waits until a connection from the router to addr:lbPort is
// answered.
func (e *env) waitServed(addr netip.Addr) {
	e.t.Helper()
	waitFor(e.t, 15*time.Second, "kube-proxy serves "+addr.String()+" from outside", func() (bool, string) {
		got, err := e.routerAsk(addr, lbPort)
		return err == nil && got != "", fmt.Sprint(got, err)
	})
}

// spread makes n connections from the router to addr:port and counts who
// answered ("error" for a failed connection).
func (e *env) spread(addr netip.Addr, port, n int) map[string]int {
	seen := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			got, err := e.routerAsk(addr, port)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || got == "" {
				seen["error"]++
			} else {
				seen[got]++
			}
		})
	}
	wg.Wait()
	return seen
}

// TestLoadBalancer: a dual-stack LoadBalancer Service with
// externalTrafficPolicy Local and two backends on node-1, one on node-2.
// flock-controller gives it an address of each family from the lab's
// ServiceAddressPool; the router learns each from node-1 and node-2 only
// and spreads connections from outside the cluster over all three
// backends, kube-proxy delivering them. NetworkPolicy on the backends
// still decides after kube-proxy's DNAT. node-2's only backend failing
// withdraws node-2's route alone; an externalTrafficPolicy Cluster Service
// is announced by every node; deleting a Service withdraws its addresses
// and frees them for the next Service.
func TestLoadBalancer(t *testing.T) {
	e := up(t, 3)
	if !e.lab.Real() {
		t.Skip("LoadBalancer Services need kube-proxy and EndpointSlices: the real node stack")
	}
	ctx := context.Background()
	dir := t.TempDir()
	down := func(pod string) string { return filepath.Join(dir, pod+".down") }
	backends := map[string]*corev1.Pod{}
	for _, p := range []struct{ name, node string }{{"lb1", "node-1"}, {"lb2", "node-1"}, {"lb3", "node-2"}} {
		backends[p.name] = lbBackend(p.name, p.node, "lb", down(p.name))
		e.create(backends[p.name])
	}
	for name := range backends {
		e.waitReady("default", name)
	}
	e.createService(lbService("web", "lb", corev1.ServiceExternalTrafficPolicyLocal, nil))
	addrs := e.waitIngress("default", "web", 2)
	if !lab.LabServices6.Contains(addrs[0]) || !lab.LabServices4.Contains(addrs[1]) {
		t.Fatalf("web got %v, want one address of %s and one of %s", addrs, lab.LabServices6, lab.LabServices4)
	}
	router := e.lab.Router
	for _, a := range addrs {
		waitFor(t, 30*time.Second, "router ECMP to "+a.String()+" via node-1 and node-2", func() (bool, string) {
			out := route(router, a)
			return nexthops(router, a) == 2 && strings.Contains(out, viaNode(e, "node-1", a)) &&
				strings.Contains(out, viaNode(e, "node-2", a)), out
		})
		// The agents announce on the EndpointSlice, kube-proxy programs its
		// rules from the same change within its own sync period: wait for
		// the first answer before counting.
		e.waitServed(a)
		seen := e.spread(a, lbPort, 48)
		for _, p := range []string{"lb1", "lb2", "lb3"} {
			if seen["default/"+p] == 0 {
				t.Errorf("%s: 48 connections from outside never reached %s: %v", a, p, seen)
			}
		}
		if seen["error"] > 0 {
			t.Errorf("%s: %d of 48 connections from outside failed: %v", a, seen["error"], seen)
		}
	}

	// NetworkPolicy applies to the backends after kube-proxy's DNAT: deny
	// every ingress and the outside gets nothing; allow the router's
	// links and it gets through again (Local keeps the client's address).
	np := e.cs.NetworkingV1().NetworkPolicies("default")
	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "lb-deny"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "lb"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	if _, err := np.Create(ctx, deny, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		waitFor(t, 15*time.Second, "default deny stops the outside at "+a.String(), func() (bool, string) {
			seen := e.spread(a, lbPort, 6)
			return seen["error"] == 6, fmt.Sprint(seen)
		})
	}
	allow := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "lb-allow-router"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "lb"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "2001:db8:1ab::/48"}},
				{IPBlock: &networkingv1.IPBlock{CIDR: "198.19.0.0/16"}},
			}}},
		},
	}
	if _, err := np.Create(ctx, allow, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		waitFor(t, 15*time.Second, "the router's links are allowed to "+a.String(), func() (bool, string) {
			seen := e.spread(a, lbPort, 6)
			return seen["error"] == 0, fmt.Sprint(seen)
		})
	}
	for _, name := range []string{"lb-deny", "lb-allow-router"} {
		if err := np.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// node-2's only backend fails: node-2 withdraws, node-1 keeps serving.
	e.setFile(backends["lb3"], down("lb3"), true)
	for _, a := range addrs {
		waitFor(t, 30*time.Second, "router withdraws node-2's "+a.String(), func() (bool, string) {
			out := route(router, a)
			return nexthops(router, a) == 1 && strings.Contains(out, viaNode(e, "node-1", a)), out
		})
		seen := e.spread(a, lbPort, 16)
		if seen["default/lb3"] > 0 || seen["error"] > 0 {
			t.Errorf("%s with lb3 NotReady: %v, want only lb1 and lb2", a, seen)
		}
	}
	e.setFile(backends["lb3"], down("lb3"), false)
	for _, a := range addrs {
		waitFor(t, 30*time.Second, "router relearns node-2's "+a.String(), func() (bool, string) {
			return nexthops(router, a) == 2, route(router, a)
		})
	}

	// Cluster: every Ready node announces, node-3 without a backend too,
	// and kube-proxy there forwards to the others.
	e.createService(lbService("web-cluster", "lb", corev1.ServiceExternalTrafficPolicyCluster, nil))
	caddrs := e.waitIngress("default", "web-cluster", 2)
	for _, a := range caddrs {
		waitFor(t, 30*time.Second, "router ECMP to "+a.String()+" via all three nodes", func() (bool, string) {
			return nexthops(router, a) == 3, route(router, a)
		})
		e.waitServed(a)
		if seen := e.spread(a, lbPort, 24); seen["error"] > 0 {
			t.Errorf("%s (Cluster): %v", a, seen)
		}
	}

	// Deleting a Service withdraws its addresses everywhere and frees them:
	// a new Service asking for exactly those gets them.
	if err := e.cs.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		waitFor(t, 30*time.Second, "router withdraws "+a.String()+" after the Service is deleted", func() (bool, string) {
			return nexthops(router, a) == 0, route(router, a)
		})
	}
	want := addrs[0].String() + "," + addrs[1].String()
	e.createService(lbService("web-again", "lb", corev1.ServiceExternalTrafficPolicyLocal,
		map[string]string{v1alpha1.AnnotationLoadBalancerIPs: want}))
	if got := e.waitIngress("default", "web-again", 2); got[0] != addrs[0] || got[1] != addrs[1] {
		t.Errorf("web-again asked for %s and got %v", want, got)
	}
	// Changing the type releases them too.
	patch := []byte(`{"spec":{"type":"ClusterIP","externalTrafficPolicy":null}}`)
	if _, err := e.cs.CoreV1().Services("default").Patch(ctx, "web-again", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		waitFor(t, 30*time.Second, "router withdraws "+a.String()+" after the type change", func() (bool, string) {
			return nexthops(router, a) == 0, route(router, a)
		})
	}
	waitFor(t, 30*time.Second, "web-again's ingress cleared", func() (bool, string) {
		got, err := e.ingress("default", "web-again")
		return err == nil && len(got) == 0, fmt.Sprint(got, err)
	})
}

// TestLoadBalancerAssignment: two Services asking for one address, the
// second gets a Warning Event and no address; a pool run out gets a clear
// Event; killing the leading flock-controller hands the Lease to the other
// replica within the lease duration, no assigned address changes, and the
// new leader assigns.
func TestLoadBalancerAssignment(t *testing.T) {
	e := up(t, 1)
	ctx := context.Background()
	single := func(name string, annotations map[string]string) *corev1.Service {
		s := lbService(name, "none", corev1.ServiceExternalTrafficPolicyCluster, annotations)
		one := corev1.IPFamilyPolicySingleStack
		s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &one, []corev1.IPFamily{corev1.IPv4Protocol}
		return s
	}
	ask := map[string]string{v1alpha1.AnnotationLoadBalancerIPs: "203.0.113.9"}
	e.createService(single("first", ask))
	if got := e.waitIngress("default", "first", 1); got[0] != netip.MustParseAddr("203.0.113.9") {
		t.Fatalf("first asked for 203.0.113.9, got %v", got)
	}
	e.createService(single("second", ask))
	waitFor(t, 30*time.Second, "a Warning Event on second naming 203.0.113.9", func() (bool, string) {
		w := e.serviceWarnings("default", "second")
		return len(w) > 0 && strings.Contains(strings.Join(w, "\n"), "203.0.113.9"), strings.Join(w, "\n")
	})
	if got, _ := e.ingress("default", "second"); len(got) != 0 {
		t.Errorf("second got %v while first holds the address", got)
	}

	// A pool of two addresses that hands out only on request.
	small := &v1alpha1.ServiceAddressPool{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.ServiceAddressPoolKind},
		ObjectMeta: metav1.ObjectMeta{Name: "small"},
		Spec:       v1alpha1.ServiceAddressPoolSpec{CIDRs: []string{"203.0.113.16/31"}, AutoAssign: new(bool)},
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(small)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.dyn().Resource(v1alpha1.ServiceAddressPoolGVR).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fromSmall := map[string]string{v1alpha1.AnnotationAddressPool: "small"}
	for _, name := range []string{"small-1", "small-2"} {
		e.createService(single(name, fromSmall))
		if got := e.waitIngress("default", name, 1); !netip.MustParsePrefix("203.0.113.16/31").Contains(got[0]) {
			t.Errorf("%s got %v outside the pool small", name, got)
		}
	}
	e.createService(single("small-3", fromSmall))
	waitFor(t, 30*time.Second, "a Warning Event on small-3 naming the pool small", func() (bool, string) {
		w := e.serviceWarnings("default", "small-3")
		return len(w) > 0 && strings.Contains(strings.Join(w, "\n"), "small"), strings.Join(w, "\n")
	})

	// Leader failover keeps every address.
	before := map[string][]netip.Addr{}
	for _, name := range []string{"first", "small-1", "small-2"} {
		before[name], _ = e.ingress("default", name)
	}
	killed := e.killLeader(t)
	// The killed leader never released the Lease: the other replica
	// waits out the lease duration, then takes it at a retry (late on a
	// loaded machine: the bound is twice the lease).
	if took, most := time.Since(killed), 2*leader.DefaultLeaseDuration; took > most {
		t.Errorf("takeover took %s, more than twice the lease duration (%s)", took, most)
	}
	e.createService(single("after-failover", nil))
	e.waitIngress("default", "after-failover", 1)
	for name, was := range before {
		if got, _ := e.ingress("default", name); fmt.Sprint(got) != fmt.Sprint(was) {
			t.Errorf("%s: %v before the failover, %v after", name, was, got)
		}
	}
	// Freeing small-1's address lets small-3 have it.
	if err := e.cs.CoreV1().Services("default").Delete(ctx, "small-1", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	if got := e.waitIngress("default", "small-3", 1); got[0] != before["small-1"][0] {
		t.Errorf("small-3 got %v, want small-1's freed %v", got, before["small-1"])
	}
}
