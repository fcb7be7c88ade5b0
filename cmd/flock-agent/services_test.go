package main

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/controlplane/controlplanetest"
	"github.com/fritzlab/flock/internal/testns"
	adminapi "github.com/fritzlab/flock/pkg/admin"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/bird/birdtest"
	"github.com/fritzlab/flock/pkg/kube"
)

// routerConf is a router's BIRD in its own namespace: one session per
// family with the node (AS 65101), importing everything, exporting nothing.
const routerConf = `router id 192.0.2.1;
protocol device {
}
protocol bgp node6 {
	local 2001:db8:f10c:ff::1 as 65000;
	neighbor 2001:db8:f10c:ff::2 as 65101;
	direct;
	connect retry time 1;
	ipv6 { import all; export none; };
}
protocol bgp node4 {
	local 192.0.2.1 as 65000;
	neighbor 192.0.2.2 as 65101;
	direct;
	connect retry time 1;
	ipv4 { import all; export none; };
}
`

// TestKubernetesServices runs the real agent and its BIRD against a real
// kube-apiserver, as the agent's own ServiceAccount (deploy/rbac.yaml), and
// a router BIRD in a namespace of its own: the test writes a
// ServiceAddressPool, a LoadBalancer Service with its status and its
// EndpointSlices by hand, and the router sees the node announce exactly
// the addresses it should, with the pool's communities.
func TestKubernetesServices(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (as CI runs it): network namespaces, etcd and kube-apiserver")
	}
	if _, err := exec.LookPath("bird"); err != nil {
		t.Fatal("needs bird: apt-get install -y bird2")
	}
	testns.RemoveLeftovers()
	ctx, cancel := context.WithCancel(context.Background())
	if d, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), d.Add(-10*time.Second))
	}
	defer cancel()

	cp, token := controlplanetest.StartWithAgent(t)
	admin := kubernetes.NewForConfigOrDie(cp.RESTConfig())
	dyn := dynamic.NewForConfigOrDie(cp.RESTConfig())
	setup(t, ctx, admin)

	binDir := t.TempDir()
	if err := cnitest.BuildBinaries(binDir); err != nil {
		t.Fatal(err)
	}
	node, err := cnitest.NewNode(binDir, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	forwardAPI(t, node.NS.Path, strings.TrimPrefix(cp.Server, "https://"))
	kubeconfig := filepath.Join(node.Dir, "agent.kubeconfig")
	if err := controlplane.WriteKubeconfig(kubeconfig, "https://127.0.0.1:6443", cp.CAFile, token); err != nil {
		t.Fatal(err)
	}

	// The router: the far end of the node's uplink, moved to its own
	// namespace, with a BIRD of its own.
	birdtest.Uplink(t, node.NS.Name)
	routerNS := testns.New(t, "router")
	testns.Run(t, "ip", "-n", node.NS.Name, "link", "set", "router", "netns", routerNS)
	for _, args := range [][]string{
		{"link", "set", "lo", "up"}, {"link", "set", "router", "up"},
		{"addr", "add", birdtest.Router6 + "/64", "dev", "router", "nodad"}, {"addr", "add", birdtest.Router4 + "/24", "dev", "router"},
	} {
		testns.Run(t, append([]string{"ip", "-n", routerNS}, args...)...)
	}
	routerDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(routerDir, "bird.conf"), []byte(routerConf), 0o644); err != nil {
		t.Fatal(err)
	}
	router := birdtest.Start(t, routerNS, filepath.Join(routerDir, "bird.conf"), filepath.Join(routerDir, "bird.ctl"))
	routes := func() string {
		lines, err := router.Command(ctx, "show route all")
		if err != nil {
			return ""
		}
		var b strings.Builder
		for _, l := range lines {
			b.WriteString(l.Text + "\n")
		}
		return b.String()
	}
	has := func(prefix string) bool { return strings.Contains(routes(), prefix) }

	bn := birdtest.StartSidecar(t, node.NS.Name, node.Dir)
	args := append([]string{"--kubeconfig", kubeconfig, "--node-name", "node-1", "--resync", "1h", "--service-cidrs", "10.96.0.0/12"}, bn.AgentArgs()...)
	startAgent(t, node, args...)

	nc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flock.fritzlab.net/v1alpha1", "kind": "NodeConfig",
		"metadata": map[string]any{"name": "node-1"},
		"spec": map[string]any{"cidr6": "2001:db8:42:1::/64", "cidr4": "198.18.1.0/24", "bgp": map[string]any{
			"asn": int64(65101), "peers": []any{
				map[string]any{"address": birdtest.Router6, "asn": int64(65000)},
				map[string]any{"address": birdtest.Router4, "asn": int64(65000)},
			}}},
	}}
	if _, err := dyn.Resource(kube.NodeConfigResource).Create(ctx, nc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flock.fritzlab.net/v1alpha1", "kind": v1alpha1.ServiceAddressPoolKind,
		"metadata": map[string]any{"name": "web"},
		"spec": map[string]any{"cidrs": []any{"2001:db8:5::/112", "198.51.100.0/28"},
			"communities": []any{"65000:5"}, "largeCommunities": []any{"65000:5:1"}},
	}}
	if _, err := dyn.Resource(v1alpha1.ServiceAddressPoolGVR).Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node's pool at the router", func() bool { return has("2001:db8:42:1::/64") && has("198.18.1.0/24") })

	// A Local Service: IPv6 endpoint Ready on this node, IPv4 only on
	// node-2; and an address outside every pool in its status.
	svc, err := admin.CoreV1().Services("demo").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Ports: []corev1.ServicePort{{Port: 80}}, Selector: map[string]string{"app": "web"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "2001:db8:5::10"}, {IP: "198.51.100.10"}, {IP: "203.0.113.7"}}
	if svc, err = admin.CoreV1().Services("demo").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	slice := func(name string, family discoveryv1.AddressType, addr, nodeName string, ready bool) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "demo", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: family,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{addr}, NodeName: ptr.To(nodeName),
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}},
			Ports: []discoveryv1.EndpointPort{{Port: ptr.To[int32](80)}},
		}
	}
	slices6 := admin.DiscoveryV1().EndpointSlices("demo")
	es6, err := slices6.Create(ctx, slice("web-6", discoveryv1.AddressTypeIPv6, "2001:db8:42:1::a", "node-1", true), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slices6.Create(ctx, slice("web-4", discoveryv1.AddressTypeIPv4, "198.18.2.10", "node-2", true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "2001:db8:5::10/128 at the router", func() bool { return has("2001:db8:5::10/128") })
	if r := routes(); !strings.Contains(r, "(65000,5)") || !strings.Contains(r, "(65000, 5, 1)") {
		t.Errorf("the Service route lacks its pool's communities:\n%s", r)
	}
	if r := routes(); strings.Contains(r, "198.51.100.10/32") || strings.Contains(r, "203.0.113.7") {
		t.Errorf("the router has a Service address the node must not announce (IPv4 Local without a local endpoint, one outside every pool):\n%s", r)
	}
	ac := adminapi.NewClient(filepath.Join(node.Dir, "admin.sock"), 5*time.Second)
	var st adminapi.Services
	if err := ac.Get(ctx, adminapi.PathServices, &st); err != nil || !st.Enabled || !st.Synced || len(st.Items) != 3 {
		t.Fatalf("admin services = %+v, %v", st, err)
	}
	reasons := map[string]string{}
	for _, it := range st.Items {
		reasons[it.Address.String()] = it.Reason
	}
	for a, want := range map[string]string{
		"2001:db8:5::10": "Local: 1 ready endpoint on this node",
		"198.51.100.10":  "Local: no ready endpoint on this node",
		"203.0.113.7":    "refused: outside every ServiceAddressPool",
	} {
		if reasons[a] != want {
			t.Errorf("admin services: %s: reason %q, want %q", a, reasons[a], want)
		}
	}

	// The local endpoint goes NotReady and back: the router loses and
	// regains the route, each in well under a second. Each flip waits out
	// the Reloader's coalescing window first (a change within it of the
	// last reload waits for its end), as a readiness probe's period does.
	flip := func(ready bool) time.Duration {
		t.Helper()
		time.Sleep(bird.CoalesceWindow + 100*time.Millisecond)
		es6.Endpoints[0].Conditions.Ready = ptr.To(ready)
		start := time.Now()
		if es6, err = slices6.Update(ctx, es6, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		for has("2001:db8:5::10/128") != ready {
			if time.Since(start) > 20*time.Second {
				t.Fatalf("the router did not follow the endpoint (ready %v) in 20 s", ready)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(start)
	}
	var times []time.Duration
	for range 3 {
		times = append(times, flip(false), flip(true))
	}
	t.Logf("EndpointSlice update to the router's table (withdraw, announce, …): %v", times)
	if slices.Max(times) > time.Second {
		t.Errorf("the slowest change took %v, want well under 1 s (the target is 300 ms p99)", slices.Max(times))
	}

	// The metrics say the same: one IPv6 address announced, two in a pool,
	// and each flip timed to BIRD.
	_, body, err := node.HTTPGet(ctx, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`flock_lb_addresses 2`, `flock_lb_addresses_announced{family="ipv6"} 1`,
		`flock_lb_addresses_announced{family="ipv4"} 0`} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The first announcement and the six flips, at least.
	if m := regexp.MustCompile(`flock_lb_announce_latency_seconds_count (\d+)\n`).FindSubmatch(body); m == nil {
		t.Errorf("/metrics lacks flock_lb_announce_latency_seconds_count")
	} else if n, _ := strconv.Atoi(string(m[1])); n < 7 {
		t.Errorf("/metrics: flock_lb_announce_latency_seconds_count %d, want at least 7", n)
	}

	// Cluster: the IPv4 address is announced too (a Ready endpoint
	// anywhere, this node ready).
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	if svc, err = admin.CoreV1().Services("demo").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "198.51.100.10/32 at the router", func() bool { return has("198.51.100.10/32") })
	if strings.Contains(routes(), "203.0.113.7") {
		t.Errorf("an address outside every pool reached the router")
	}
	if conf, err := os.ReadFile(bn.Config); err != nil || !strings.Contains(string(conf), "route 198.51.100.10/32 blackhole { bgp_community.add((65000, 5));") {
		t.Errorf("bird.conf lacks the Service route (%v):\n%s", err, conf)
	}
	if log := node.AgentLog(); !strings.Contains(log, "service addresses announced") || !strings.Contains(log, "service address not announced") {
		t.Errorf("the agent's log lacks the announcement lines")
	}

	// Deleting the Service withdraws everything it had.
	if err := admin.CoreV1().Services("demo").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Service addresses gone from the router", func() bool {
		r := routes()
		return r != "" && !strings.Contains(r, "2001:db8:5::10/128") && !strings.Contains(r, "198.51.100.10/32")
	})
	waitSessions(t, bn, bird.PeerName(netip.MustParseAddr(birdtest.Router4)), bird.PeerName(netip.MustParseAddr(birdtest.Router6)))
}

// lbService creates the ServiceAddressPool web (2001:db8:5::/112) and a
// Local LoadBalancer Service demo/lb with addr in its status and one Ready
// endpoint on node.
func lbService(t *testing.T, ctx context.Context, admin kubernetes.Interface, dyn dynamic.Interface, addr, node string) {
	t.Helper()
	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flock.fritzlab.net/v1alpha1", "kind": v1alpha1.ServiceAddressPoolKind,
		"metadata": map[string]any{"name": "web"},
		"spec":     map[string]any{"cidrs": []any{"2001:db8:5::/112"}},
	}}
	if _, err := dyn.Resource(v1alpha1.ServiceAddressPoolGVR).Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := admin.CoreV1().Services("demo").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "lb"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: addr}}
	if _, err := admin.CoreV1().Services("demo").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "demo", Name: "lb-1", Labels: map[string]string{discoveryv1.LabelServiceName: "lb"}},
		AddressType: discoveryv1.AddressTypeIPv6,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"2001:db8:42:1::a"}, NodeName: ptr.To(node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	}
	if _, err := admin.DiscoveryV1().EndpointSlices("demo").Create(ctx, es, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
