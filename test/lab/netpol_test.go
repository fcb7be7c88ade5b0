package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/fritzlab/flock/pkg/policy/nptest"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/fritzlab/flock/pkg/policy"
)

// The NetworkPolicy end-to-end test follows the upstream Kubernetes suite
// (test/e2e/network/netpol): namespaces x, y and z with pods a, b and c
// each, here spread over the lab's two nodes, every pod serving TCP and UDP
// on ports 80 and 81 with named container ports serve-80-tcp and so on.
// Each case creates policies (and changes labels) step by step, and after
// each step every pair of the 9×9, on TCP 80, TCP 81, UDP 80 and UDP 81,
// over IPv6 and IPv4, to the pod's addresses and to its Service's
// ClusterIPs, is probed with real traffic and compared with the verdicts
// of policy.Translate computed from what the API server holds.
// For many cases a hand-written table (the upstream one, extended to both
// ports and protocols) must agree with Translate too. A pod reaching itself
// goes over its own loopback, which no policy sees: always allowed.
//
// Like upstream, every pod has a Service of its own (s-<ns>-<pod>, dual
// stack), which the lab's kube-proxy stand-in DNATs on the sending node:
// policy must hold after Service DNAT, and a pod reaching itself through
// its Service (hairpin) is allowed like loopback.

// npKind is one protocol and port a probe uses.
type npKind struct {
	proto policy.Protocol
	port  uint16
}

func (k npKind) String() string {
	return fmt.Sprintf("%s/%d", strings.ToUpper(k.proto.String()), k.port)
}

var (
	npTCP80, npTCP81 = npKind{policy.TCP, 80}, npKind{policy.TCP, 81}
	npUDP80, npUDP81 = npKind{policy.UDP, 80}, npKind{policy.UDP, 81}
	npKinds          = []npKind{npTCP80, npTCP81, npUDP80, npUDP81}
	npNamespaces     = []string{"x", "y", "z"}
	npPodNames       = []string{"a", "b", "c"}
)

// npProbeTimeout is how long a probe waits for the server's answer; a
// denied probe costs this much.
const npProbeTimeout = time.Second

// npProbesAtOnce bounds the probes in flight (each holds an OS thread in
// the sender's namespace).
const npProbesAtOnce = 512

// npHand is a hand-written truth table: may from reach to ("x/a") on k?
// It is not asked about a pod reaching itself.
type npHand func(from, to string, k npKind) bool

type npStep struct {
	what string
	do   func(n *npEnv)
	hand npHand // optional
}

type npCase struct {
	name  string
	steps []npStep
}

type npPod struct {
	key, netns string
	v6, v4     netip.Addr
	svc6, svc4 netip.Addr // the ClusterIPs of the pod's Service
}

// npPath is how a probe reaches its destination: family, and the pod's
// own address or its Service's ClusterIP.
type npPath struct {
	name    string
	v6, svc bool
}

var npPaths = [npNPaths]npPath{{"IPv4", false, false}, {"IPv6", true, false}, {"IPv4 Service", false, true}, {"IPv6 Service", true, true}}

const npNPaths = 4

func (p *npPod) dst(path npPath) netip.Addr {
	switch {
	case path.svc && path.v6:
		return p.svc6
	case path.svc:
		return p.svc4
	}
	return p.addr(path.v6)
}

func (p *npPod) addr(v6 bool) netip.Addr {
	if v6 {
		return p.v6
	}
	return p.v4
}

type npEnv struct {
	*env
	t    *testing.T
	pods []*npPod // x/a, x/b, …, z/c
}

func (n *npEnv) pod(key string) *npPod {
	for _, p := range n.pods {
		if p.key == key {
			return p
		}
	}
	n.t.Fatalf("no pod %s", key)
	return nil
}

func npNS(key string) string   { ns, _, _ := strings.Cut(key, "/"); return ns }
func npName(key string) string { _, n, _ := strings.Cut(key, "/"); return n }

// TestNetworkPolicy runs the cases in a lab of two nodes.
func TestNetworkPolicy(t *testing.T) {
	start := time.Now()
	e := up(t, 2)
	n := &npEnv{env: e, t: t}
	n.setup()
	t.Logf("lab and 9 pods ready in %s", time.Since(start).Round(time.Second))
	for _, c := range npCases() {
		t.Run(c.name, func(t *testing.T) {
			n.t = t
			n.reset()
			n.check("before the case: everything open", func(string, string, npKind) bool { return true })
			for _, s := range c.steps {
				s.do(n)
				n.check(s.what, s.hand)
			}
		})
	}
	t.Run("anycast traffic obeys ingress", func(t *testing.T) {
		n.t = t
		n.reset()
		n.anycast()
	})
	t.Logf("total %s", time.Since(start).Round(time.Second))
}

// anycast: a pod serving anycast addresses is reached on them through the
// router like any other destination, and its ingress policy holds for that
// traffic as for its unicast addresses (the rules match its veth, which
// the anycast route leads out of), on TCP and UDP (flock-lab serve answers
// a datagram from the address it came to).
func (n *npEnv) anycast() {
	any6, any4 := netip.MustParseAddr("2001:db8:ffff::80"), netip.MustParseAddr("192.0.2.80")
	p := npServePod("x", "any", n.lab.Nodes[0].Name)
	p.Labels["pod"] = "any"
	p.Annotations = map[string]string{"flock.fritzlab.net/anycast": any6.String() + "," + any4.String()}
	n.create(p)
	n.t.Cleanup(func() { n.deleteAndWait("x", "any") })
	n.waitReady("x", "any")
	probe := func(hand func(from string) bool) {
		n.t.Helper()
		deadline := time.Now().Add(30 * time.Second) // BGP announces the addresses first
		for round := 1; ; round++ {
			var mu sync.Mutex
			var bad []string
			var wg sync.WaitGroup
			for _, from := range n.pods {
				for _, k := range npKinds {
					for _, a := range []netip.Addr{any6, any4} {
						wg.Go(func() {
							ok, err := npProbe(from.netns, k, a, "x/any")
							if err != nil || ok != hand(from.key) {
								mu.Lock()
								bad = append(bad, fmt.Sprintf("%s -> %s %s: got through %v (%v), want %v", from.key, a, k, ok, err, hand(from.key)))
								mu.Unlock()
							}
						})
					}
				}
			}
			wg.Wait()
			if len(bad) == 0 {
				n.t.Logf("anycast: %d probes match, round %d", len(n.pods)*len(npKinds)*2, round)
				return
			}
			if time.Now().After(deadline) {
				slices.Sort(bad)
				n.t.Fatalf("anycast probes differ after %d rounds:\n%s", round, strings.Join(bad, "\n"))
			}
		}
	}
	probe(func(string) bool { return true })
	n.apply("x", npPolicy("any-from-y", map[string]string{"pod": "any"}, nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels("ns", "y"))))))
	want := func(from string) bool { return npNS(from) == "y" }
	// Translate agrees: the anycast pod's ingress admits exactly y's pods.
	in := n.translate()["x/any"].Ingress
	for _, from := range n.pods {
		for _, k := range npKinds {
			if in.Permits(from.v6, k.proto, k.port) != want(from.key) || in.Permits(from.v4, k.proto, k.port) != want(from.key) {
				n.t.Errorf("Translate: x/any's ingress from %s %s disagrees with the hand table", from.key, k)
			}
		}
	}
	probe(want)
}

// setup creates the namespaces and pods, pods spread over the nodes in
// turn, and waits until every pod is Ready.
func (n *npEnv) setup() {
	ctx := context.Background()
	for _, ns := range npNamespaces {
		if _, err := n.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: ns, Labels: map[string]string{"ns": ns}}}, metav1.CreateOptions{}); err != nil {
			n.t.Fatal(err)
		}
	}
	i := 0
	for _, ns := range npNamespaces {
		for _, name := range npPodNames {
			n.create(npServePod(ns, name, n.lab.Nodes[i%len(n.lab.Nodes)].Name))
			i++
		}
	}
	for _, ns := range npNamespaces {
		for _, name := range npPodNames {
			p := n.waitReady(ns, name)
			netns, err := n.lab.PodNetns(ctx, ns, name)
			if err != nil {
				n.t.Fatal(err)
			}
			v6, v4 := podAddrs(p)
			if !v6.IsValid() || !v4.IsValid() {
				n.t.Fatalf("pod %s/%s is not dual-stack: %v", ns, name, p.Status.PodIPs)
			}
			svc := n.service(ns, name)
			var svc6, svc4 netip.Addr
			for _, ip := range svc.Spec.ClusterIPs {
				if a := netip.MustParseAddr(ip); a.Is6() {
					svc6 = a
				} else {
					svc4 = a
				}
			}
			if !svc6.IsValid() || !svc4.IsValid() {
				n.t.Fatalf("service %s/%s is not dual-stack: %v", ns, svc.Name, svc.Spec.ClusterIPs)
			}
			n.pods = append(n.pods, &npPod{key: ns + "/" + name, netns: netns, v6: v6, v4: v4, svc6: svc6, svc4: svc4})
		}
	}
}

// service creates the pod's Service as the upstream suite does: selecting
// pod=<name> in its namespace, every port the pod serves, both families.
func (n *npEnv) service(ns, pod string) *corev1.Service {
	dual := corev1.IPFamilyPolicyRequireDualStack
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s-" + ns + "-" + pod},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"pod": pod}, IPFamilyPolicy: &dual},
	}
	for _, k := range npKinds {
		proto := corev1.ProtocolTCP
		if k.proto == policy.UDP {
			proto = corev1.ProtocolUDP
		}
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: fmt.Sprintf("serve-%d-%s", k.port, k.proto), Protocol: proto, Port: int32(k.port), TargetPort: intstr.FromInt32(int32(k.port)),
		})
	}
	svc, err := n.cs.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		n.t.Fatalf("create service for %s/%s: %v", ns, pod, err)
	}
	return svc
}

// npServePod serves TCP and UDP on 80 and 81, with named ports as the
// upstream suite names them.
func npServePod(namespace, name, node string) *corev1.Pod {
	var ports []corev1.ContainerPort
	for _, k := range npKinds {
		proto := corev1.ProtocolTCP
		if k.proto == policy.UDP {
			proto = corev1.ProtocolUDP
		}
		ports = append(ports, corev1.ContainerPort{
			Name: fmt.Sprintf("serve-%d-%s", k.port, k.proto), ContainerPort: int32(k.port), Protocol: proto,
		})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"pod": name}},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name:    "serve",
				Image:   "flock-lab",
				Command: []string{"flock-lab", "serve", "--tcp", "80", "--tcp", "81", "--udp", "80", "--udp", "81"},
				Ports:   ports,
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(80)}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
}

// reset deletes every policy and puts the labels back.
func (n *npEnv) reset() {
	ctx := context.Background()
	for _, ns := range npNamespaces {
		if err := n.cs.NetworkingV1().NetworkPolicies(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			n.t.Fatal(err)
		}
		n.patchLabels(ctx, "namespaces", "", ns, map[string]string{"ns": ns}, "ns2")
		for _, name := range npPodNames {
			n.patchLabels(ctx, "pods", ns, name, map[string]string{"pod": name}, "pod2", "target")
		}
	}
}

// patchLabels sets labels and removes others with a merge patch.
func (n *npEnv) patchLabels(ctx context.Context, kind, ns, name string, set map[string]string, remove ...string) {
	labels := map[string]any{}
	for k, v := range set {
		labels[k] = v
	}
	for _, k := range remove {
		labels[k] = nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		n.t.Fatal(err)
	}
	if kind == "namespaces" {
		_, err = n.cs.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, patch, metav1PatchOptions)
	} else {
		_, err = n.cs.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, patch, metav1PatchOptions)
	}
	if err != nil {
		n.t.Fatalf("label %s %s/%s: %v", kind, ns, name, err)
	}
}

func (n *npEnv) labelNS(ns, k, v string) {
	n.patchLabels(context.Background(), "namespaces", "", ns, map[string]string{k: v})
}

func (n *npEnv) labelPod(key, k, v string) {
	n.patchLabels(context.Background(), "pods", npNS(key), npName(key), map[string]string{k: v})
}

func (n *npEnv) apply(ns string, np *networkingv1.NetworkPolicy) {
	ctx := context.Background()
	np = np.DeepCopy()
	np.Namespace = ns
	c := n.cs.NetworkingV1().NetworkPolicies(ns)
	old, err := c.Get(ctx, np.Name, metav1.GetOptions{})
	if err == nil {
		np.ResourceVersion = old.ResourceVersion
		_, err = c.Update(ctx, np, metav1.UpdateOptions{})
	} else {
		_, err = c.Create(ctx, np, metav1.CreateOptions{})
	}
	if err != nil {
		n.t.Fatalf("apply networkpolicy %s/%s: %v", ns, np.Name, err)
	}
}

func (n *npEnv) deletePolicy(ns, name string) {
	if err := n.cs.NetworkingV1().NetworkPolicies(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		n.t.Fatal(err)
	}
}

// npVerdicts are the expected results: [from][to][kind][path].
type npVerdicts map[string]map[string]map[npKind][npNPaths]bool

// translate runs policy.Translate on what the API server holds now, every
// pod local, and returns each pod's allow-lists by namespace/name.
func (n *npEnv) translate() map[string]*policy.PodPolicy {
	ctx := context.Background()
	in := &policy.Input{}
	nss, err := n.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		n.t.Fatal(err)
	}
	for _, ns := range nss.Items {
		in.Namespaces = append(in.Namespaces, policy.Namespace{Name: ns.Name, Labels: ns.Labels})
	}
	nps, err := n.cs.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		n.t.Fatal(err)
	}
	in.Policies = nps.Items
	pods, err := n.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		n.t.Fatal(err)
	}
	for i, p := range pods.Items {
		pp := policy.Pod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, Iface: fmt.Sprintf("pod%d", i)}
		for _, ip := range p.Status.PodIPs {
			pp.IPs = append(pp.IPs, netip.MustParseAddr(ip.IP))
		}
		for _, c := range p.Spec.Containers {
			for _, port := range c.Ports {
				proto, _ := policy.ParseProtocol(string(port.Protocol))
				pp.Ports = append(pp.Ports, policy.ContainerPort{Name: port.Name, Protocol: proto, Port: uint16(port.ContainerPort)})
			}
		}
		in.Pods = append(in.Pods, pp)
	}
	m := policy.Translate(in)
	if len(m.Warnings) > 0 {
		n.t.Errorf("Translate warnings: %v", m.Warnings)
	}
	byKey := map[string]*policy.PodPolicy{}
	for i := range m.Pods {
		byKey[m.Pods[i].Namespace+"/"+m.Pods[i].Name] = &m.Pods[i]
	}
	return byKey
}

// model computes every verdict from Translate's allow-lists: the sender's
// egress and the receiver's ingress must both allow.
func (n *npEnv) model() npVerdicts {
	byKey := n.translate()
	v := npVerdicts{}
	for _, from := range n.pods {
		v[from.key] = map[string]map[npKind][npNPaths]bool{}
		for _, to := range n.pods {
			v[from.key][to.key] = map[npKind][npNPaths]bool{}
			for _, k := range npKinds {
				var r [npNPaths]bool
				// Through a Service too: policy sees the addresses after DNAT.
				for i, path := range npPaths {
					r[i] = from == to || (byKey[from.key].Egress.Permits(to.addr(path.v6), k.proto, k.port) &&
						byKey[to.key].Ingress.Permits(from.addr(path.v6), k.proto, k.port))
				}
				v[from.key][to.key][k] = r
			}
		}
	}
	return v
}

// check compares the model with the hand table, then probes until the
// real traffic matches the model in one whole round (policies take a
// moment to reach both agents), or fails with the differences.
func (n *npEnv) check(what string, hand npHand) {
	n.t.Helper()
	want := n.model()
	if hand != nil {
		var bad []string
		for from, row := range want {
			for to, ks := range row {
				for k, r := range ks {
					for i, path := range npPaths {
						if from != to && r[i] != hand(from, to, k) {
							bad = append(bad, fmt.Sprintf("%s -> %s %s %s: Translate says %v, the hand table %v", from, to, k, path.name, r[i], hand(from, to, k)))
						}
					}
				}
			}
		}
		if len(bad) > 0 {
			slices.Sort(bad)
			n.t.Errorf("%s: Translate and the hand table disagree on %d verdicts:\n%s", what, len(bad), strings.Join(bad, "\n"))
		}
	}
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	for round := 1; ; round++ {
		got, errs := n.probeAll()
		diff := npDiff(want, got)
		if len(diff) == 0 && len(errs) == 0 {
			allowed, denied := npCount(want)
			n.t.Logf("%s: %d allowed and %d denied probes match, round %d, %s", what, allowed, denied, round, time.Since(start).Round(10*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			n.t.Errorf("%s: real traffic differs from the model after %d rounds (%s); %d probe errors %v\n%s",
				what, round, time.Since(start).Round(time.Second), len(errs), errs, n.table(want, got))
			return
		}
	}
}

func npCount(v npVerdicts) (allowed, denied int) {
	for _, row := range v {
		for _, ks := range row {
			for _, r := range ks {
				for _, ok := range r {
					if ok {
						allowed++
					} else {
						denied++
					}
				}
			}
		}
	}
	return allowed, denied
}

func npDiff(want, got npVerdicts) []string {
	var out []string
	for from, row := range want {
		for to, ks := range row {
			for k, r := range ks {
				if got[from][to][k] != r {
					out = append(out, fmt.Sprintf("%s -> %s %s", from, to, k))
				}
			}
		}
	}
	return out
}

// table prints, for every kind and family with a difference, the upstream
// suite's truth table: rows are senders, columns receivers; . allowed, X
// denied; a wrong verdict shows what the traffic did, in brackets.
func (n *npEnv) table(want, got npVerdicts) string {
	var b strings.Builder
	for _, k := range npKinds {
		for f, path := range npPaths {
			fam := path.name
			wrong := false
			for _, from := range n.pods {
				for _, to := range n.pods {
					wrong = wrong || want[from.key][to.key][k][f] != got[from.key][to.key][k][f]
				}
			}
			if !wrong {
				continue
			}
			fmt.Fprintf(&b, "%s %s (expected; [x] = wrong, x is what happened)\n     ", k, fam)
			for _, to := range n.pods {
				fmt.Fprintf(&b, " %-4s", to.key)
			}
			b.WriteByte('\n')
			for _, from := range n.pods {
				fmt.Fprintf(&b, "%-4s ", from.key)
				for _, to := range n.pods {
					w, g := want[from.key][to.key][k][f], got[from.key][to.key][k][f]
					cell := map[bool]string{true: ".", false: "X"}
					if w == g {
						fmt.Fprintf(&b, "  %s  ", cell[w])
					} else {
						fmt.Fprintf(&b, " [%s] ", cell[g])
					}
				}
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}

// probeAll sends every probe at once and returns what got through.
func (n *npEnv) probeAll() (npVerdicts, []string) {
	got := npVerdicts{}
	for _, from := range n.pods {
		got[from.key] = map[string]map[npKind][npNPaths]bool{}
		for _, to := range n.pods {
			got[from.key][to.key] = map[npKind][npNPaths]bool{}
		}
	}
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	limit := make(chan struct{}, npProbesAtOnce)
	for _, from := range n.pods {
		for _, to := range n.pods {
			for _, k := range npKinds {
				for f, path := range npPaths {
					wg.Go(func() {
						limit <- struct{}{}
						ok, err := npProbe(from.netns, k, to.dst(path), to.key)
						<-limit
						mu.Lock()
						defer mu.Unlock()
						if err != nil {
							errs = append(errs, fmt.Sprintf("%s -> %s %s: %v", from.key, to.dst(path), k, err))
						}
						r := got[from.key][to.key][k]
						r[f] = ok
						got[from.key][to.key][k] = r
					})
				}
			}
		}
	}
	wg.Wait()
	return got, errs
}

// npProbe connects (TCP) or sends datagrams (UDP) from a pod's namespace
// to dst and says whether the server answered with the identity expected;
// a timeout is a denial. Other errors (an answer from the wrong pod, a
// refused connection) are returned.
func npProbe(netns string, k npKind, dst netip.Addr, identity string) (bool, error) {
	var ok bool
	err := ns.WithNetNSPath("/run/netns/"+netns, func(ns.NetNS) error {
		addr := netip.AddrPortFrom(dst, k.port).String()
		deadline := time.Now().Add(npProbeTimeout)
		buf := make([]byte, 256)
		if k.proto == policy.TCP {
			c, err := net.DialTimeout("tcp", addr, npProbeTimeout)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return nil
				}
				return err
			}
			defer c.Close()
			_ = c.SetReadDeadline(deadline)
			n, err := c.Read(buf)
			if err != nil {
				return fmt.Errorf("connected but read: %w", err)
			}
			if got := strings.TrimSpace(string(buf[:n])); got != identity {
				return fmt.Errorf("answered by %q", got)
			}
			ok = true
			return nil
		}
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		// A datagram can be lost; send again while waiting.
		for try := 0; time.Now().Before(deadline); try++ {
			if _, err := c.Write([]byte("probe")); err != nil {
				return err
			}
			wait := time.Now().Add(300 * time.Millisecond)
			if wait.After(deadline) {
				wait = deadline
			}
			_ = c.SetReadDeadline(wait)
			n, err := c.Read(buf)
			if err == nil {
				if got := strings.TrimSpace(string(buf[:n])); got != identity {
					return fmt.Errorf("answered by %q", got)
				}
				ok = true
				return nil
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				// An ICMP unreachable would mean no server, not a policy.
				return err
			}
		}
		return nil
	})
	return ok, err
}
