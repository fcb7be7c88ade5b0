// Package nptest builds NetworkPolicy objects for tests, tersely:
//
//	nptest.Policy("x", "web", nptest.Labels("app", "web"),
//		nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels("team", "b"))), nptest.Port("", "http")))
//
// It imports nothing of flock, so that pkg/policy's own tests can use it
// (policytest imports pkg/policy), and so do the lab's.
package nptest

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Option sets part of a policy's spec.
type Option = func(*networkingv1.NetworkPolicySpec)

// Policy is a policy in namespace ns selecting the pods sel selects (nil:
// every pod of the namespace).
func Policy(ns, name string, sel *metav1.LabelSelector, opts ...Option) networkingv1.NetworkPolicy {
	p := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if sel != nil {
		p.Spec.PodSelector = *sel
	}
	for _, o := range opts {
		o(&p.Spec)
	}
	return p
}

// Types sets the policy types.
func Types(t ...networkingv1.PolicyType) Option {
	return func(s *networkingv1.NetworkPolicySpec) { s.PolicyTypes = t }
}

// Ingress adds an ingress rule.
func Ingress(from []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) Option {
	return func(s *networkingv1.NetworkPolicySpec) {
		s.Ingress = append(s.Ingress, networkingv1.NetworkPolicyIngressRule{From: from, Ports: ports})
	}
}

// Egress adds an egress rule.
func Egress(to []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) Option {
	return func(s *networkingv1.NetworkPolicySpec) {
		s.Egress = append(s.Egress, networkingv1.NetworkPolicyEgressRule{To: to, Ports: ports})
	}
}

// Peers lists a rule's peers.
func Peers(p ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer { return p }

// Labels selects by labels, given as key, value, key, value...
func Labels(kv ...string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

// Expr selects by one expression.
func Expr(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

// PodPeer selects pods of the policy's namespace.
func PodPeer(pod *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: pod}
}

// NSPeer selects every pod of the namespaces ns selects.
func NSPeer(ns *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: ns}
}

// NSPodPeer selects the pods pod selects in the namespaces ns selects.
func NSPodPeer(ns, pod *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: ns, PodSelector: pod}
}

// Block is an ipBlock peer.
func Block(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

// Port is a port by number (int) or name (string), or every port (nil),
// up to endPort when given; protocol "" is left unset, for the API server
// (or policy.Normalize) to default to TCP.
func Port(proto corev1.Protocol, port any, endPort ...int32) networkingv1.NetworkPolicyPort {
	out := networkingv1.NetworkPolicyPort{}
	if proto != "" {
		out.Protocol = &proto
	}
	switch p := port.(type) {
	case int:
		v := intstr.FromInt32(int32(p))
		out.Port = &v
	case string:
		v := intstr.FromString(p)
		out.Port = &v
	}
	if len(endPort) > 0 {
		out.EndPort = &endPort[0]
	}
	return out
}
