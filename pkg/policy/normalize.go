package policy

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Normalize returns the policy as the API server stores it, so that objects
// built in memory (tests, files) mean what they would mean in a cluster:
//   - an empty policyTypes becomes [Ingress], plus Egress when the policy
//     has egress rules (SetDefaults_NetworkPolicy);
//   - a port without a protocol is TCP;
//   - empty ingress, egress, from, to and ports lists are nil (they do not
//     survive a round trip through the API).
//
// The input is not modified.
func Normalize(np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	out := np.DeepCopy()
	s := &out.Spec
	if len(s.PolicyTypes) == 0 {
		s.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(s.Egress) > 0 {
			s.PolicyTypes = append(s.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
	if len(s.Ingress) == 0 {
		s.Ingress = nil
	}
	if len(s.Egress) == 0 {
		s.Egress = nil
	}
	for i := range s.Ingress {
		r := &s.Ingress[i]
		r.Ports = normalizePorts(r.Ports)
		if len(r.From) == 0 {
			r.From = nil
		}
	}
	for i := range s.Egress {
		r := &s.Egress[i]
		r.Ports = normalizePorts(r.Ports)
		if len(r.To) == 0 {
			r.To = nil
		}
	}
	return out
}

func normalizePorts(ports []networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort {
	if len(ports) == 0 {
		return nil
	}
	for i := range ports {
		if ports[i].Protocol == nil {
			tcp := corev1.ProtocolTCP
			ports[i].Protocol = &tcp
		}
	}
	return ports
}

// hasType says whether a normalized policy applies in a direction.
func hasType(np *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	for _, pt := range np.Spec.PolicyTypes {
		if pt == t {
			return true
		}
	}
	return false
}
