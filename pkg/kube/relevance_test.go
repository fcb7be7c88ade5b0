package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/pkg/kube/apiclient/apiclientfake"
)

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

// np is a policy in ns selecting subject, with one ingress rule from peers.
func np(ns, name string, subject *metav1.LabelSelector, peers ...networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *subject,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: peers}}},
	}
}

func TestPeerOfAny(t *testing.T) {
	local := map[string][]labels.Set{"x": {{"app": "db"}}}
	all := []policySelectors{
		compileSelectors(np("x", "db-from-web", sel("app", "db"), networkingv1.NetworkPolicyPeer{PodSelector: sel("app", "web")})),
		compileSelectors(np("x", "db-from-team", sel("app", "db"), networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("team", "a"), PodSelector: sel("role", "client")})),
		compileSelectors(np("x", "db-from-block", sel("app", "db"), networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}})),
		// Selects no local pod: its peers never matter here.
		compileSelectors(np("x", "cache-from-all", sel("app", "cache"), networkingv1.NetworkPolicyPeer{NamespaceSelector: sel()})),
		compileSelectors(np("y", "other-ns", sel("app", "db"), networkingv1.NetworkPolicyPeer{PodSelector: sel()})),
	}
	active := activePolicies(all, local)
	if len(active) != 3 {
		t.Fatalf("active policies: %d, want the 3 in x selecting app=db", len(active))
	}
	for _, tc := range []struct {
		name string
		pod  podView
		want bool
	}{
		{"web in x", podView{"x", labels.Set{"app": "web"}, nil, false}, true},
		{"web in y (podSelector alone is the policy's namespace)", podView{"y", labels.Set{"app": "web"}, labels.Set{"team": "a"}, false}, false},
		{"client in a team-a namespace", podView{"z", labels.Set{"role": "client"}, labels.Set{"team": "a"}, false}, true},
		{"client in a team-b namespace", podView{"z", labels.Set{"role": "client"}, labels.Set{"team": "b"}, false}, false},
		{"unlabelled pod elsewhere (only an inactive policy takes every namespace)", podView{"w", nil, nil, false}, false},
	} {
		if got := peerOfAny(active, tc.pod); got != tc.want {
			t.Errorf("%s: peerOfAny = %v, want %v", tc.name, got, tc.want)
		}
	}
	broken := compileSelectors(np("x", "broken", sel("app", "db"), networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}}}))
	if !peerOfAny([]policySelectors{broken}, podView{"q", nil, nil, false}) {
		t.Error("a peer whose selector does not parse must count as matching every pod")
	}
}

// TestClusterSkipsIrrelevantPods: with its node set, the cluster pokes for
// the node's pods and for peers of the policies selecting them, and skips
// every other pod.
func TestClusterSkipsIrrelevantPods(t *testing.T) {
	c := NewCluster(apiclientfake.New()) // not running: the test fills the caches
	c.SetNode("node-1")
	add := func(inf cache.SharedIndexInformer, o any) {
		t.Helper()
		if err := inf.GetIndexer().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	add(c.namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{"team": "a"}}})
	add(c.policies, np("x", "db", sel("app", "db"), networkingv1.NetworkPolicyPeer{PodSelector: sel("app", "web")}))
	strip := func(p *corev1.Pod) any {
		o, _ := StripPolicyPod(p)
		return o
	}
	db := clusterPod("x", "db", "u-db", "node-1", map[string]string{"app": "db"})
	add(c.pods, strip(db))

	for _, tc := range []struct {
		name     string
		old, cur *corev1.Pod
		poke     bool
	}{
		{"a local pod", db, nil, true},
		{"a peer elsewhere", clusterPod("x", "web-1", "u1", "node-2", map[string]string{"app": "web"}), nil, true},
		{"an unrelated pod elsewhere", clusterPod("x", "batch-1", "u2", "node-2", map[string]string{"app": "batch"}), nil, false},
		{"a pod that stops being a peer", clusterPod("x", "web-2", "u3", "node-2", map[string]string{"app": "web"}),
			clusterPod("x", "web-2", "u3", "node-2", map[string]string{"app": "batch"}), true},
	} {
		drain(c.Changes())
		drain(c.PeerChanges())
		_, skipsBefore := c.PodEvents()
		var cur any
		if tc.cur != nil {
			cur = strip(tc.cur)
		}
		c.podChanged(strip(tc.old), cur)
		// The node's own pods poke Changes, peers elsewhere PeerChanges
		// (which the controller batches).
		poked := len(c.Changes())+len(c.PeerChanges()) == 1
		_, skips := c.PodEvents()
		if poked != tc.poke || (skips > skipsBefore) == tc.poke {
			t.Errorf("%s: poked %v (skips %d -> %d), want poke %v", tc.name, poked, skipsBefore, skips, tc.poke)
		}
	}
	// The node's own pod pokes Changes (a sync at once), a peer elsewhere
	// PeerChanges (batched).
	drain(c.Changes())
	drain(c.PeerChanges())
	c.podChanged(strip(db), nil)
	if len(c.Changes()) != 1 || len(c.PeerChanges()) != 0 {
		t.Error("a local pod must poke Changes")
	}
	drain(c.Changes())
	c.podChanged(strip(clusterPod("x", "web-3", "u5", "node-2", map[string]string{"app": "web"})), nil)
	if len(c.Changes()) != 0 || len(c.PeerChanges()) != 1 {
		t.Error("a peer elsewhere must poke PeerChanges")
	}
	// Without a node, every pod pokes (the behaviour before SetNode).
	c.node = ""
	drain(c.Changes())
	c.podChanged(strip(clusterPod("x", "batch-2", "u4", "node-2", nil)), nil)
	if len(c.Changes()) != 1 {
		t.Error("without a node an unrelated pod must poke")
	}
}

// TestNamedEgressPeers: an egress rule with a named port and no peers (or
// an ipBlock) resolves the name on every pod, so a pod with a named port
// anywhere is a peer, and one without is not.
func TestNamedEgressPeers(t *testing.T) {
	named := intstr.FromString("http")
	p := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "to-http"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *sel("app", "db"),
			Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &named}}}}},
	}
	active := []policySelectors{compileSelectors(p)}
	idx := newPeerIndex(active, func(string) labels.Set { return nil })
	for _, tc := range []struct {
		pod  podView
		want bool
	}{
		{podView{"y", labels.Set{"app": "web"}, nil, true}, true},
		{podView{"y", labels.Set{"app": "web"}, nil, false}, false},
	} {
		if got := peerOfAny(active, tc.pod); got != tc.want {
			t.Errorf("peerOfAny(%+v) = %v, want %v", tc.pod, got, tc.want)
		}
		if got := idx.peer(tc.pod); got != tc.want {
			t.Errorf("peerIndex.peer(%+v) = %v, want %v", tc.pod, got, tc.want)
		}
	}
}
