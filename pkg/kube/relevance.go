package kube

import (
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// A node's ruleset depends on a remote pod only through the peers of the
// policies that select one of the node's pods. The pod informer's handler
// asks relevance whether a change of a pod elsewhere can matter before it
// pokes the controller, so that churn in the rest of a large cluster costs
// a few selector matches per event instead of a translation of the whole
// cluster (which would find the ruleset unchanged anyway).

// policySelectors are one policy's label selectors, parsed once.
type policySelectors struct {
	namespace string
	subject   labels.Selector
	peers     []peerSelector
}

// peerSelector is one podSelector/namespaceSelector peer; ipBlock peers and
// rules without peers select no pods by label, so they are not listed.
type peerSelector struct {
	pod labels.Selector // nil: every pod of the selected namespaces
	ns  labels.Selector // nil: the policy's own namespace
	// any: the selectors did not parse; the peer is taken to match
	// everything, so a broken policy never hides a change.
	any bool
}

// compileSelectors parses a policy's selectors.
func compileSelectors(np *networkingv1.NetworkPolicy) policySelectors {
	out := policySelectors{namespace: np.Namespace}
	subject, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		subject = labels.Everything() // selects no one in Translate; here, conservatively, all
	}
	out.subject = subject
	var peers []networkingv1.NetworkPolicyPeer
	for _, r := range np.Spec.Ingress {
		peers = append(peers, r.From...)
	}
	for _, r := range np.Spec.Egress {
		peers = append(peers, r.To...)
	}
	for _, p := range peers {
		if p.PodSelector == nil && p.NamespaceSelector == nil {
			continue // an ipBlock
		}
		var ps peerSelector
		var err1, err2 error
		if p.PodSelector != nil {
			ps.pod, err1 = metav1.LabelSelectorAsSelector(p.PodSelector)
		}
		if p.NamespaceSelector != nil {
			ps.ns, err2 = metav1.LabelSelectorAsSelector(p.NamespaceSelector)
		}
		ps.any = err1 != nil || err2 != nil
		out.peers = append(out.peers, ps)
	}
	return out
}

// podView is what relevance reads of a pod.
type podView struct {
	namespace string
	labels    labels.Set
	nsLabels  labels.Set
}

// selects reports whether the policy's subject selector matches any of the
// node's pods (by namespace).
func (p *policySelectors) selects(local map[string][]labels.Set) bool {
	for _, l := range local[p.namespace] {
		if p.subject.Matches(l) {
			return true
		}
	}
	return false
}

// peerOf reports whether pod matches one of the policy's pod peers.
func (p *policySelectors) peerOf(pod podView) bool {
	for _, ps := range p.peers {
		if ps.any {
			return true
		}
		if ps.ns == nil && pod.namespace != p.namespace {
			continue
		}
		if ps.ns != nil && !ps.ns.Matches(pod.nsLabels) {
			continue
		}
		if ps.pod == nil || ps.pod.Matches(pod.labels) {
			return true
		}
	}
	return false
}

// activePolicies are the policies that select one of the node's pods: the
// only ones whose peers can reach the node's ruleset.
func activePolicies(all []policySelectors, local map[string][]labels.Set) []policySelectors {
	var out []policySelectors
	for i := range all {
		if all[i].selects(local) {
			out = append(out, all[i])
		}
	}
	return out
}

// peerOfAny reports whether pod is a peer of any of the active policies.
func peerOfAny(active []policySelectors, pod podView) bool {
	for i := range active {
		if active[i].peerOf(pod) {
			return true
		}
	}
	return false
}
