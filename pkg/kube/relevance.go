package kube

import (
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// A node's ruleset depends on a remote pod only through the peers of the
// policies that select one of the node's pods. The pod informer's handler
// asks relevance whether a change of a pod elsewhere can matter before it
// pokes the controller, so that churn in the rest of a large cluster costs
// a few selector matches per event instead of a translation of the whole
// cluster (which would find the ruleset unchanged anyway).

// policySelectors are one policy's label selectors, parsed once.
type policySelectors struct {
	np        *networkingv1.NetworkPolicy
	namespace string
	subject   labels.Selector
	peers     []peerSelector
	// named: an egress rule with named ports reaches pods beyond its
	// selectors (no peers: every pod; an ipBlock: the pods inside it), and
	// Translate resolves the names on each of them, so every pod with a
	// named container port can change the rule.
	named bool
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
	out := policySelectors{np: np, namespace: np.Namespace}
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
		out.named = out.named || namedBeyondSelectors(r)
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

// namedBeyondSelectors reports whether an egress rule has a named port
// and a peer that is not a label selector (none at all, or an ipBlock).
func namedBeyondSelectors(r networkingv1.NetworkPolicyEgressRule) bool {
	named := false
	for _, p := range r.Ports {
		named = named || (p.Port != nil && p.Port.Type == intstr.String)
	}
	if !named {
		return false
	}
	if len(r.To) == 0 {
		return true
	}
	for _, p := range r.To {
		if p.IPBlock != nil {
			return true
		}
	}
	return false
}

// podView is what relevance reads of a pod.
type podView struct {
	namespace string
	labels    labels.Set
	nsLabels  labels.Set
	// named: the pod has a named container port.
	named bool
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
	if p.named && pod.named {
		return true
	}
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

// peerIndex answers peerOfAny for many pods at once (a translation's
// input): the active policies' pod selectors grouped by the namespace
// whose pods they can select, each namespace's list built on first use,
// so that a pod costs its own namespace's selectors only.
type peerIndex struct {
	active   []policySelectors
	nsLabels func(namespace string) labels.Set
	byNS     map[string]nsPeers
	named    bool // some active policy makes every pod with a named port a peer
}

// nsPeers are the pod selectors that can reach one namespace's pods.
type nsPeers struct {
	all  bool // a peer takes every pod of the namespace (or did not parse)
	pods []labels.Selector
}

func newPeerIndex(active []policySelectors, nsLabels func(string) labels.Set) *peerIndex {
	x := &peerIndex{active: active, nsLabels: nsLabels, byNS: map[string]nsPeers{}}
	for i := range active {
		x.named = x.named || active[i].named
	}
	return x
}

// peer reports whether pod is a peer of an active policy: the same answer
// as peerOfAny.
func (x *peerIndex) peer(pod podView) bool {
	if x.named && pod.named {
		return true
	}
	np, ok := x.byNS[pod.namespace]
	if !ok {
		nsl := x.nsLabels(pod.namespace)
		for i := range x.active {
			p := &x.active[i]
			for _, ps := range p.peers {
				switch {
				case ps.any:
					np.all = true
				case ps.ns == nil && pod.namespace != p.namespace:
				case ps.ns != nil && !ps.ns.Matches(nsl):
				case ps.pod == nil:
					np.all = true
				default:
					np.pods = append(np.pods, ps.pod)
				}
			}
		}
		x.byNS[pod.namespace] = np
	}
	if np.all {
		return true
	}
	for _, s := range np.pods {
		if s.Matches(pod.labels) {
			return true
		}
	}
	return false
}
