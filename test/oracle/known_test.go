package oracle

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/policy/policytest"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Where kube-network-policies v1.1.1 reads a NetworkPolicy differently from
// the Kubernetes API, and which side Kubernetes' own code and documentation
// take. The generated comparison avoids these inputs only by doing what a
// cluster does to every policy (policytest.APIDefaults); Translate follows
// the API on both.
//
//   - An empty, non-nil `ingress: []` or `egress: []` (an in-memory object
//     that never went through the API server): kube-network-policies
//     denies on nil but allows everything on an empty list
//     (EvaluatePolicyDirection tests `== nil`, evaluateIngress/Egress then
//     `len(...) == 0` as "allow all"). The API documents both as "does not
//     allow any traffic", and the API server's storage round trip turns the
//     empty list into nil, so no cluster shows kube-network-policies an
//     empty list: TestEmptyRuleListsDeny.
//   - A port without a protocol (nil pointer) panics in evaluatePorts, and
//     an empty policyTypes makes a policy isolate nothing; the API server
//     defaults both (TCP; [Ingress] plus Egress when there are egress
//     rules) before anyone reads the policy. Translate applies the same
//     defaults itself (policy.Normalize): TestUndefaultedPolicies.
//
// The other way round, NotIn on a key an object lacks: kube-network-policies
// uses labels.Selector like Kubernetes and Translate (true), while cyclonus,
// the other oracle, reads it as false: TestNotInMissingKey.

// handScenario: namespace x with pods a (local), b and c, each with one
// IPv4 address 10.0.0.1-3.
func handScenario(podLabels map[string]map[string]string, policies ...networkingv1.NetworkPolicy) *policytest.Scenario {
	s := &policytest.Scenario{In: &policy.Input{Node: policytest.LocalNode, Policies: policies,
		Namespaces: []policy.Namespace{{Name: "x", Labels: map[string]string{"kubernetes.io/metadata.name": "x"}}}}}
	for i, name := range []string{"a", "b", "c"} {
		p := policy.Pod{Namespace: "x", Name: name, Labels: podLabels[name], Node: "n2",
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})}}
		if name == "a" {
			p.Node, p.Iface = policytest.LocalNode, "flock00000001"
		}
		s.In.Pods = append(s.In.Pods, p)
	}
	return s
}

// probe is the TCP/80 probe from one pod of a handScenario to another.
func probe(s *policytest.Scenario, src, dst string) policytest.Probe {
	ep := func(name string) policytest.Endpoint {
		for i := range s.In.Pods {
			if p := &s.In.Pods[i]; p.Name == name {
				return policytest.Endpoint{Pod: p, Addr: p.IPs[0]}
			}
		}
		panic(name)
	}
	return policytest.Probe{Src: ep(src), Dst: ep(dst), Protocol: policy.TCP, Port: 80}
}

// translated is Translate's verdict on a probe, in the direction whose end
// is the local pod a.
func translated(t *testing.T, s *policytest.Scenario, pr policytest.Probe) bool {
	t.Helper()
	m := policy.Translate(s.In)
	if len(m.Warnings) > 0 || len(m.Pods) != 1 {
		t.Fatalf("model: %+v", m)
	}
	if pr.Dst.Local() {
		return m.Pods[0].Ingress.Permits(pr.Src.Addr, pr.Protocol, pr.Port)
	}
	return m.Pods[0].Egress.Permits(pr.Dst.Addr, pr.Protocol, pr.Port)
}

// knpVerdict is kube-network-policies' verdict on the same, given policies
// as they are.
func knpVerdict(t *testing.T, s *policytest.Scenario, policies []*networkingv1.NetworkPolicy, pr policytest.Probe) bool {
	t.Helper()
	k, err := newKNP(s, policies)
	if err != nil {
		t.Fatal(err)
	}
	v, err := k.ask(context.Background(), pr, false)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Dst.Local() {
		return v.ingress
	}
	return v.egress
}

func TestEmptyRuleListsDeny(t *testing.T) {
	np := networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "isolate-a"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "a"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{},
			Egress:      []networkingv1.NetworkPolicyEgressRule{},
		},
	}

	// The API: an empty list allows nothing.
	doc := networkingv1.NetworkPolicySpec{}.SwaggerDoc()
	for field, says := range map[string]string{
		"ingress": "If this field is empty then this NetworkPolicy does not allow any traffic",
		"egress":  "If this field is empty then this NetworkPolicy limits all outgoing traffic",
	} {
		if !strings.Contains(doc[field], says) {
			t.Errorf("the API's documentation of %s no longer says %q: %s", field, says, doc[field])
		}
	}
	// The API server's storage (protobuf) turns the empty lists into nil,
	// and so does APIDefaults.
	b, err := np.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var stored networkingv1.NetworkPolicy
	if err := stored.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if stored.Spec.Ingress != nil || stored.Spec.Egress != nil {
		t.Errorf("stored: ingress %#v, egress %#v; want nil", stored.Spec.Ingress, stored.Spec.Egress)
	}
	if d := policytest.APIDefaults(np); d.Spec.Ingress != nil || d.Spec.Egress != nil {
		t.Errorf("APIDefaults: ingress %#v, egress %#v; want nil", d.Spec.Ingress, d.Spec.Egress)
	}

	s := handScenario(map[string]map[string]string{"a": {"pod": "a"}, "b": {"pod": "b"}, "c": {"pod": "c"}}, np)
	for _, pr := range []policytest.Probe{probe(s, "b", "a"), probe(s, "a", "b")} {
		if translated(t, s, pr) {
			t.Errorf("%s: Translate allows, want deny", pr)
		}
		if knpVerdict(t, s, []*networkingv1.NetworkPolicy{&stored}, pr) {
			t.Errorf("%s: kube-network-policies allows the stored policy, want deny", pr)
		}
		// kube-network-policies' difference, as documented above.
		if !knpVerdict(t, s, []*networkingv1.NetworkPolicy{&np}, pr) {
			t.Errorf("%s: kube-network-policies denies an in-memory empty list too: the note above is wrong", pr)
		}
	}
}

func TestNotInMissingKey(t *testing.T) {
	from := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"web"}}}}
	np := networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "from-not-web"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "a"}},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: from}}}},
		},
	}
	// b has app=web, c has no app label at all.
	s := handScenario(map[string]map[string]string{"a": {"pod": "a"}, "b": {"pod": "b", "app": "web"}, "c": {"pod": "c"}}, np)

	// Kubernetes' own selector code: NotIn matches an object without the
	// key.
	sel, err := metav1.LabelSelectorAsSelector(from)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set{"pod": "c"}) || sel.Matches(labels.Set{"pod": "b", "app": "web"}) {
		t.Fatalf("labels.Selector %s: NotIn does not read as documented", sel)
	}
	for _, c := range []struct {
		src  string
		want bool
	}{{"b", false}, {"c", true}} {
		pr := probe(s, c.src, "a")
		if got := translated(t, s, pr); got != c.want {
			t.Errorf("%s: Translate %v, want %v", pr, got, c.want)
		}
		if got := knpVerdict(t, s, apiPolicies(s), pr); got != c.want {
			t.Errorf("%s: kube-network-policies %v, want %v", pr, got, c.want)
		}
	}
}

func TestUndefaultedPolicies(t *testing.T) {
	// No policyTypes and no rules: the API server defaults policyTypes to
	// [Ingress] (see its documentation), which isolates pod a.
	isolate := networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "isolate-a"},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "a"}}},
	}
	doc := networkingv1.NetworkPolicySpec{}.SwaggerDoc()["policyTypes"]
	if says := "all policies (whether or not they contain an ingress section) are assumed to affect ingress"; !strings.Contains(doc, says) {
		t.Errorf("the API's documentation of policyTypes no longer says %q: %s", says, doc)
	}
	s := handScenario(map[string]map[string]string{"a": {"pod": "a"}, "b": {"pod": "b"}, "c": {"pod": "c"}}, isolate)
	pr := probe(s, "b", "a")
	if translated(t, s, pr) {
		t.Errorf("%s: Translate allows, want deny", pr)
	}
	if knpVerdict(t, s, apiPolicies(s), pr) {
		t.Errorf("%s: kube-network-policies allows the defaulted policy, want deny", pr)
	}
	if !knpVerdict(t, s, []*networkingv1.NetworkPolicy{&isolate}, pr) {
		t.Errorf("%s: kube-network-policies denies without policyTypes: the note above is wrong", pr)
	}

	// A port without a protocol: TCP to the API server, a nil dereference
	// to kube-network-policies.
	port := intstr.FromInt32(80)
	web := networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "web"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "a"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &port}}}},
		},
	}
	s = handScenario(map[string]map[string]string{"a": {"pod": "a"}, "b": {"pod": "b"}, "c": {"pod": "c"}}, web)
	if !translated(t, s, pr) {
		t.Errorf("%s: Translate denies, want allow", pr)
	}
	if !knpVerdict(t, s, apiPolicies(s), pr) {
		t.Errorf("%s: kube-network-policies denies the defaulted policy, want allow", pr)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("kube-network-policies reads a port without a protocol: the note above is wrong")
			}
		}()
		knpVerdict(t, s, []*networkingv1.NetworkPolicy{&web}, pr)
	}()
}
