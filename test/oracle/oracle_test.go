package oracle

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/policy/policytest"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/kube-network-policies/pkg/api"
	"sigs.k8s.io/kube-network-policies/pkg/network"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
	"sigs.k8s.io/kube-network-policies/pkg/podinfo"
)

// The oracle is kube-network-policies' evaluator for standard
// NetworkPolicies (networkpolicy.StandardNetworkPolicy), the one its
// dataplane asks for every queued packet, fed as in its own main: informers
// over namespaces, pods and policies, and podinfo.InformerProvider to find
// the pods behind a packet's addresses. Nothing of flock's is used to build
// its input but the scenario itself; policies go through the API server's
// round trip and defaulting first (policytest.APIDefaults), as they would in
// a cluster.
//
// Unlike cyclonus, kube-network-policies reads label selectors with
// labels.Selector, so the scenarios use NotIn on keys that some objects lack.
var knpOptions = policytest.Options{NotInAnyKey: true}

// knp is kube-network-policies loaded with one scenario.
type knp struct {
	eval     *networkpolicy.StandardNetworkPolicy
	engine   *networkpolicy.PolicyEngine
	provider *podinfo.InformerProvider
	// pods caches provider's answers (the stores do not change).
	pods map[netip.Addr]*api.PodInfo
}

// apiPolicies are a scenario's policies as the API server would hand them
// out.
func apiPolicies(s *policytest.Scenario) []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for _, np := range s.In.Policies {
		out = append(out, policytest.APIDefaults(np))
	}
	return out
}

// newKNP loads kube-network-policies with a scenario's namespaces and pods
// and the given policies (normally apiPolicies(s)).
func newKNP(s *policytest.Scenario, policies []*networkingv1.NetworkPolicy) (*knp, error) {
	// The informers are never started: the objects go straight into their
	// stores, which is what the listers read.
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	nsInformer := factory.Core().V1().Namespaces()
	podInformer := factory.Core().V1().Pods()
	npInformer := factory.Networking().V1().NetworkPolicies()
	for _, ns := range s.In.Namespaces {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: ns.Labels}}
		if err := nsInformer.Informer().GetStore().Add(obj); err != nil {
			return nil, err
		}
	}
	for _, p := range s.In.Pods {
		if err := podInformer.Informer().GetStore().Add(k8sPod(p)); err != nil {
			return nil, err
		}
	}
	for _, np := range policies {
		if err := npInformer.Informer().GetStore().Add(np); err != nil {
			return nil, err
		}
	}
	k := &knp{
		eval:     networkpolicy.NewStandardNetworkPolicy(policytest.LocalNode, nsInformer, podInformer, npInformer),
		provider: podinfo.NewInformerProvider(podInformer, nsInformer, nil, nil),
		pods:     map[netip.Addr]*api.PodInfo{},
	}
	k.engine = networkpolicy.NewPolicyEngine(k.provider, []api.PolicyEvaluator{k.eval})
	return k, nil
}

// k8sPod is the Pod object the API server would hold for a scenario's pod.
func k8sPod(p policy.Pod) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels},
		Spec:       corev1.PodSpec{NodeName: p.Node, Containers: []corev1.Container{{Name: "main"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, cp := range p.Ports {
		pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports, corev1.ContainerPort{
			Name: cp.Name, ContainerPort: int32(cp.Port), Protocol: k8sProtocol(cp.Protocol)})
	}
	for i, a := range p.IPs {
		if i == 0 {
			pod.Status.PodIP = a.String()
		}
		pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: a.String()})
	}
	return pod
}

func k8sProtocol(p policy.Protocol) corev1.Protocol {
	return corev1.Protocol(strings.ToUpper(p.String()))
}

// podInfo is the pod kube-network-policies finds behind an address, or nil.
func (k *knp) podInfo(a netip.Addr) *api.PodInfo {
	p, ok := k.pods[a]
	if !ok {
		p, _ = k.provider.GetPodInfoByIP(a.String())
		k.pods[a] = p
	}
	return p
}

// verdicts are kube-network-policies' answers for one packet.
type verdicts struct {
	ingress, egress bool
	packet          *bool // the whole pipeline's, when asked for
}

// ask evaluates a probe as kube-network-policies' dataplane sees its first
// packet: each direction on its own and, with pipeline, the whole pipeline
// (egress, then ingress).
func (k *knp) ask(ctx context.Context, pr policytest.Probe, pipeline bool) (verdicts, error) {
	pkt := &network.Packet{
		Family: corev1.IPv6Protocol,
		SrcIP:  net.IP(pr.Src.Addr.AsSlice()),
		DstIP:  net.IP(pr.Dst.Addr.AsSlice()),
		Proto:  k8sProtocol(pr.Protocol),
		// A source port among the probed destination ports, where it shows
		// a mix-up of the two.
		SrcPort: 81,
		DstPort: int(pr.Port),
	}
	if pr.Src.Addr.Is4() {
		pkt.Family = corev1.IPv4Protocol
	}
	srcPod, dstPod := k.podInfo(pr.Src.Addr), k.podInfo(pr.Dst.Addr)
	var v verdicts
	in, err := k.eval.EvaluateIngress(ctx, pkt, srcPod, dstPod)
	if err != nil {
		return v, err
	}
	out, err := k.eval.EvaluateEgress(ctx, pkt, srcPod, dstPod)
	if err != nil {
		return v, err
	}
	v.ingress, v.egress = in != api.VerdictDeny, out != api.VerdictDeny
	if pipeline {
		ok, err := k.engine.EvaluatePacket(ctx, pkt)
		if err != nil {
			return v, err
		}
		v.packet = &ok
	}
	return v, nil
}

// compare asks every probe of a scenario of Translate's model and of
// kube-network-policies and returns the disagreements (at most max).
func compare(s *policytest.Scenario, max int, n *policytest.Tally) ([]string, error) {
	pods, problem := policytest.LocalPolicies(s)
	if problem != "" {
		return []string{problem}, nil
	}
	k, err := newKNP(s, apiPolicies(s))
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var bad []string
	for pr := range s.Probes() {
		// The whole pipeline also reads the remote pod's policies, which
		// Translate leaves to the remote node: it is compared when both
		// ends are here.
		both := pr.Src.Local() && pr.Dst.Local()
		want, err := k.ask(ctx, pr, both)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pr, err)
		}
		var in, out *policy.Allow
		gotIn, gotOut := true, true
		if pr.Dst.Local() {
			in = pods[pr.Dst.Pod.Key()].Ingress
			gotIn = in.Permits(pr.Src.Addr, pr.Protocol, pr.Port)
			n.Add(want.ingress)
			if gotIn != want.ingress {
				bad = append(bad, fmt.Sprintf("ingress %s: Translate %v, kube-network-policies %v; allow-list %s", pr, gotIn, want.ingress, allowString(in)))
			}
		}
		if pr.Src.Local() {
			out = pods[pr.Src.Pod.Key()].Egress
			gotOut = out.Permits(pr.Dst.Addr, pr.Protocol, pr.Port)
			n.Add(want.egress)
			if gotOut != want.egress {
				bad = append(bad, fmt.Sprintf("egress %s: Translate %v, kube-network-policies %v; allow-list %s", pr, gotOut, want.egress, allowString(out)))
			}
		}
		if both && (gotIn && gotOut) != *want.packet {
			bad = append(bad, fmt.Sprintf("packet %s: Translate %v, kube-network-policies' engine %v", pr, gotIn && gotOut, *want.packet))
		}
		if len(bad) >= max {
			break
		}
	}
	return bad, nil
}

func allowString(a *policy.Allow) string {
	if a == nil {
		return "none (not isolated)"
	}
	return fmt.Sprintf("%+v", a.Rules)
}

// TestKubeNetworkPolicies: as many scenarios as pkg/policy's TestOracle,
// every probe (all pairs of endpoints of one family with a local end, TCP,
// UDP and SCTP, ports 79-83) in both directions; not one disagreement.
func TestKubeNetworkPolicies(t *testing.T) {
	policytest.CheckRandom(t, "kube-network-policies", 20260602, 7, knpOptions, compare)
}

func FuzzKubeNetworkPolicies(f *testing.F) {
	for _, b := range policytest.FuzzSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		policytest.CheckFuzz(t, "kube-network-policies", data, knpOptions, compare)
	})
}
