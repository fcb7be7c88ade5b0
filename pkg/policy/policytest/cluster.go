// Package policytest makes synthetic NetworkPolicy inputs for tests and
// benchmarks of pkg/policy, importable by other modules too (test/oracle):
//   - Cluster: large clusters for benchmarks, pods spread over namespaces
//     and nodes and policies of the shapes real clusters have;
//   - GenScenario: small random scenarios after the upstream e2e suite, and
//     their probes, for comparing Translate with independent evaluators
//     (APIDefaults gives the policies as a cluster would), and the
//     checks that run them (CheckRandom, CheckFuzz).
//
// The same seed (or fuzz input) gives the same cluster or scenario.
package policytest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/fritzlab/flock/pkg/policy"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Node is the name of the node whose pods are local in a Cluster.
const Node = "node-000"

// Size says how big a cluster to make.
type Size struct {
	Pods     int // all pods, on every node
	Local    int // how many of them run on Node
	Policies int
	Seed     uint64
}

// Cluster makes a cluster: 20 namespaces (fewer for small sizes), apps of 5
// replicas, every pod dual-stack with named ports http (TCP 8080), metrics
// (TCP 9090) and, for a third of them, dns (UDP 53); and policies cycling
// through eight shapes: per-app default deny; allow from an app of the same
// namespace on a number; from labelled namespaces on a named port; pod and
// namespace selectors with matchExpressions on a port range; ipBlocks with
// excepts; egress to DNS; egress to a named port on selected pods
// everywhere; egress to the internet less private ranges.
func Cluster(s Size) *policy.Input {
	r := rand.New(rand.NewPCG(s.Seed, 42))
	nsCount := min(20, max(1, s.Pods/10))
	in := &policy.Input{Node: Node}
	for i := range nsCount {
		in.Namespaces = append(in.Namespaces, policy.Namespace{
			Name:   nsName(i),
			Labels: map[string]string{"team": fmt.Sprintf("t%d", i%4), "env": []string{"prod", "dev"}[i%2]},
		})
	}
	// Local pods are spread evenly among the others.
	localEvery := max(1, s.Pods/max(1, s.Local))
	local := 0
	for i := range s.Pods {
		ns := i % nsCount
		app := (i / nsCount) / 5
		p := policy.Pod{
			Namespace: nsName(ns),
			Name:      fmt.Sprintf("app-%d-%d", app, i),
			Labels: map[string]string{
				"app":  fmt.Sprintf("app-%d", app%10),
				"tier": []string{"web", "api", "db"}[app%3],
			},
			IPs: []netip.Addr{
				netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x42, byte(i >> 8), byte(i), 8: byte(r.Uint32()), 15: byte(r.Uint32())}),
				netip.AddrFrom4([4]byte{10, 42, byte(i >> 8), byte(i)}),
			},
			Node:  fmt.Sprintf("node-%03d", 1+i%49),
			Ports: []policy.ContainerPort{{Name: "http", Protocol: policy.TCP, Port: 8080}, {Name: "metrics", Protocol: policy.TCP, Port: 9090}},
		}
		if i%3 == 0 {
			p.Ports = append(p.Ports, policy.ContainerPort{Name: "dns", Protocol: policy.UDP, Port: 53})
		}
		if i%localEvery == 0 && local < s.Local {
			local++
			p.Node = Node
			p.Iface = fmt.Sprintf("flock%08x", r.Uint32())
		}
		in.Pods = append(in.Pods, p)
	}
	for i := range s.Policies {
		in.Policies = append(in.Policies, shape(i, nsName(i%nsCount), r))
	}
	return in
}

func nsName(i int) string { return fmt.Sprintf("ns-%02d", i) }

func shape(i int, ns string, r *rand.Rand) networkingv1.NetworkPolicy {
	app := func() *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", r.IntN(10))}}
	}
	np := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("np-%04d", i)}}
	np.Spec.PodSelector = *app()
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port := func(proto *corev1.Protocol, p intstr.IntOrString, end ...int32) networkingv1.NetworkPolicyPort {
		out := networkingv1.NetworkPolicyPort{Protocol: proto, Port: &p}
		if len(end) > 0 {
			out.EndPort = &end[0]
		}
		return out
	}
	switch i % 8 {
	case 0: // default deny for an app, both directions
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	case 1:
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: app()}},
			Ports: []networkingv1.NetworkPolicyPort{port(&tcp, intstr.FromInt32(8080))},
		}}
	case 2:
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"team": fmt.Sprintf("t%d", r.IntN(4))}}}},
			Ports: []networkingv1.NetworkPolicyPort{port(&tcp, intstr.FromString("http"))},
		}}
	case 3:
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{
				PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}}}},
				NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "env", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"dev"}}}},
			}},
			Ports: []networkingv1.NetworkPolicyPort{port(&tcp, intstr.FromInt32(8000), 8099)},
		}}
	case 4:
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{fmt.Sprintf("10.%d.0.0/16", 40+r.IntN(8))}}},
				{IPBlock: &networkingv1.IPBlock{CIDR: "2001:db8::/32", Except: []string{fmt.Sprintf("2001:db8:%x::/48", 0x40+r.IntN(8))}}},
			},
			Ports: []networkingv1.NetworkPolicyPort{port(&tcp, intstr.FromInt32(443))},
		}}
	case 5:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": nsName(0)}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app-0"}},
			}},
			Ports: []networkingv1.NetworkPolicyPort{port(&udp, intstr.FromInt32(53)), port(&tcp, intstr.FromInt32(53))},
		}}
	case 6:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{},
				PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "db"}},
			}},
			Ports: []networkingv1.NetworkPolicyPort{port(&tcp, intstr.FromString("metrics"))},
		}}
	case 7:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}}},
				{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: []string{"fc00::/7", "2001:db8:42::/48"}}},
			},
		}}
	}
	return np
}
