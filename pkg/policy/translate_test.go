package policy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/policy/nptest"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The hand cluster: namespaces x (team=a), y (team=b), z; pods x/a and x/b
// on this node, y/a, y/b and z/c elsewhere.
func handCluster() *Input {
	return &Input{
		Node: "n1",
		Namespaces: []Namespace{
			{Name: "x", Labels: map[string]string{"team": "a"}},
			{Name: "y", Labels: map[string]string{"team": "b"}},
			{Name: "z"},
		},
		Pods: []Pod{
			{Namespace: "x", Name: "a", Labels: map[string]string{"pod": "a", "app": "web"}, Node: "n1", Iface: "flock0000000a",
				IPs:   addrs("2001:db8:42:1::a", "10.42.1.10"),
				Ports: []ContainerPort{{"http", TCP, 80}, {"dns", UDP, 53}}},
			{Namespace: "x", Name: "b", Labels: map[string]string{"pod": "b", "app": "db"}, Node: "n1", Iface: "flock0000000b",
				IPs:   addrs("2001:db8:42:1::b", "10.42.1.11"),
				Ports: []ContainerPort{{"http", TCP, 8080}}},
			{Namespace: "y", Name: "a", Labels: map[string]string{"pod": "a", "app": "web"}, Node: "n2",
				IPs:   addrs("2001:db8:42:2::a", "10.42.2.10"),
				Ports: []ContainerPort{{"http", TCP, 81}, {"dns", TCP, 5353}}},
			{Namespace: "y", Name: "b", Labels: map[string]string{"pod": "b"}, Node: "n2",
				IPs: addrs("2001:db8:42:2::b", "10.42.2.11")},
			{Namespace: "z", Name: "c", Labels: map[string]string{"pod": "c"}, Node: "n2",
				IPs:   addrs("2001:db8:42:2::c"),
				Ports: []ContainerPort{{"http", UDP, 80}}},
		},
	}
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// peersOf are the host peers of pods of the hand cluster, in model order.
func peersOf(keys ...string) []Peer {
	var out []Peer
	for _, p := range handCluster().Pods {
		for _, k := range keys {
			if p.Key() == k {
				for _, a := range p.IPs {
					out = append(out, hostPeer(a))
				}
			}
		}
	}
	return out
}

func block(cidr string, except ...string) Peer {
	p := Peer{Prefix: netip.MustParsePrefix(cidr)}
	for _, e := range except {
		p.Except = append(p.Except, netip.MustParsePrefix(e))
	}
	return p
}

func ports(p Protocol, first, last uint16) PortRange { return PortRange{p, first, last} }

func peers(groups ...[]Peer) []Peer {
	var out []Peer
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// emptyIngress is an ingress list given but empty.
func emptyIngress(s *networkingv1.NetworkPolicySpec) {
	s.Ingress = []networkingv1.NetworkPolicyIngressRule{}
}

var all = &metav1.LabelSelector{}

var cmpAddrs = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

// TestTranslate checks the allow-lists of x/a and x/b for every feature.
func TestTranslate(t *testing.T) {
	deny := &Allow{Rules: []Rule{}}
	for _, tc := range []struct {
		name           string
		policies       []networkingv1.NetworkPolicy
		aIn, aOut, bIn *Allow
	}{
		{name: "no policy: unrestricted"},
		{
			name:     "default deny ingress for the namespace",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "deny", nil)},
			aIn:      deny, bIn: deny,
		},
		{
			name:     "a policy in another namespace selects nothing here",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("y", "deny", nil)},
		},
		{
			name:     "empty ingress list is deny",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "deny", nptest.Labels("pod", "a"), emptyIngress)},
			aIn:      deny,
		},
		{
			name:     "an empty rule allows everything",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "all", nptest.Labels("pod", "a"), nptest.Ingress(nil))},
			aIn:      &Allow{Rules: []Rule{{Peers: allPeers}}},
		},
		{
			name:     "policyTypes Egress only: ingress rules are ignored",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "e", nptest.Labels("pod", "a"), nptest.Types(networkingv1.PolicyTypeEgress), nptest.Ingress(nil))},
			aOut:     deny,
		},
		{
			name:     "no policyTypes and egress rules: both directions (API defaulting)",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "e", nptest.Labels("pod", "a"), nptest.Egress(nptest.Peers(nptest.Block("10.0.0.0/8"))))},
			aIn:      deny,
			aOut:     &Allow{Rules: []Rule{{Peers: []Peer{block("10.0.0.0/8")}}}},
		},
		{
			name:     "podSelector peer: that namespace only",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "p", nptest.Labels("pod", "a"), nptest.Ingress(nptest.Peers(nptest.PodPeer(nptest.Labels("app", "db")))))},
			aIn:      &Allow{Rules: []Rule{{Peers: peersOf("x/b")}}},
		},
		{
			name:     "namespaceSelector peer: every pod of the selected namespaces",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "p", nptest.Labels("pod", "a"), nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels("team", "b")))))},
			aIn:      &Allow{Rules: []Rule{{Peers: peersOf("y/a", "y/b")}}},
		},
		{
			name: "namespaceSelector by kubernetes.io/metadata.name, which the API server sets",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "p", nptest.Labels("pod", "a"),
				nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels(nsNameLabel, "z")))))},
			aIn: &Allow{Rules: []Rule{{Peers: peersOf("z/c")}}},
		},
		{
			name: "podSelector and namespaceSelector together: both must match",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "p", nptest.Labels("pod", "a"),
				nptest.Ingress(nptest.Peers(nptest.NSPodPeer(all, nptest.Labels("app", "web")))))},
			aIn: &Allow{Rules: []Rule{{Peers: peersOf("x/a", "y/a")}}},
		},
		{
			name: "matchExpressions In and Exists",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "p", nptest.Expr("app", metav1.LabelSelectorOpIn, "web", "api"),
				nptest.Ingress(nptest.Peers(nptest.NSPodPeer(all, nptest.Expr("app", metav1.LabelSelectorOpExists)))))},
			aIn: &Allow{Rules: []Rule{{Peers: peersOf("x/a", "x/b", "y/a")}}},
		},
		{
			name: "matchExpressions NotIn matches pods without the key, as labels.Selector does",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "p", nptest.Labels("pod", "a"),
				nptest.Ingress(nptest.Peers(nptest.NSPodPeer(all, nptest.Expr("app", metav1.LabelSelectorOpNotIn, "web")))))},
			aIn: &Allow{Rules: []Rule{{Peers: peersOf("x/b", "y/b", "z/c")}}},
		},
		{
			name: "matchExpressions DoesNotExist",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "p", nptest.Expr("app", metav1.LabelSelectorOpDoesNotExist),
				nptest.Ingress(nil))},
		},
		{
			name: "ipBlock with except, pod addresses included",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "p", nptest.Labels("pod", "a"),
				nptest.Ingress(nptest.Peers(nptest.Block("10.42.0.0/16", "10.42.2.0/24"), nptest.Block("2001:db8:42::/48"))))},
			aIn: &Allow{Rules: []Rule{{Peers: []Peer{block("10.42.0.0/16", "10.42.2.0/24"), block("2001:db8:42::/48")}}}},
		},
		{
			name: "numeric ports of each protocol, a protocol without port, an endPort range",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "p", nptest.Labels("pod", "a"),
				nptest.Ingress(nil, nptest.Port("", 80), nptest.Port(corev1.ProtocolUDP, 53), nptest.Port(corev1.ProtocolSCTP, nil), nptest.Port(corev1.ProtocolTCP, 8000, 8099)))},
			aIn: &Allow{Rules: []Rule{{Peers: allPeers, Ports: []PortRange{
				ports(TCP, 80, 80), ports(UDP, 53, 53), ports(SCTP, 0, 65535), ports(TCP, 8000, 8099)}}}},
		},
		{
			name: "named ingress port: resolved on each selected pod",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "p", nil,
				nptest.Ingress(nptest.Peers(nptest.PodPeer(all)), nptest.Port("", "http")))},
			aIn: &Allow{Rules: []Rule{{Peers: peersOf("x/a", "x/b"), Ports: []PortRange{ports(TCP, 80, 80)}}}},
			bIn: &Allow{Rules: []Rule{{Peers: peersOf("x/a", "x/b"), Ports: []PortRange{ports(TCP, 8080, 8080)}}}},
		},
		{
			name: "named port of another protocol or unknown: the rule allows nothing (not every port)",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "p", nptest.Labels("pod", "a"),
				nptest.Ingress(nil, nptest.Port(corev1.ProtocolUDP, "http"), nptest.Port("", "nope")))},
			aIn: deny,
		},
		{
			name: "named egress port: resolved on each destination pod, ipBlock pods included",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "p", nptest.Labels("pod", "a"), nptest.Types(networkingv1.PolicyTypeEgress),
				nptest.Egress(nptest.Peers(nptest.NSPeer(nptest.Labels("team", "b")), nptest.Block("2001:db8:42:2::/64", "2001:db8:42:2::b/128")),
					nptest.Port("", "http"), nptest.Port("", 443)))},
			aOut: &Allow{Rules: []Rule{
				{Peers: peers(peersOf("y/a", "y/b"), []Peer{block("2001:db8:42:2::/64", "2001:db8:42:2::b/128")}), Ports: []PortRange{ports(TCP, 443, 443)}},
				{Peers: peersOf("y/a"), Ports: []PortRange{ports(TCP, 81, 81)}},
				// z/c's http is UDP: not the policy port's protocol.
			}},
		},
		{
			name: "named egress port without peers: every pod that has it",
			policies: []networkingv1.NetworkPolicy{nptest.Policy("x", "p", nptest.Labels("pod", "a"), nptest.Types(networkingv1.PolicyTypeEgress),
				nptest.Egress(nil, nptest.Port(corev1.ProtocolUDP, "http")))},
			aOut: &Allow{Rules: []Rule{{Peers: peersOf("z/c"), Ports: []PortRange{ports(UDP, 80, 80)}}}},
		},
		{
			name: "stacked policies are a union",
			policies: []networkingv1.NetworkPolicy{
				nptest.Policy("x", "deny", nil),
				nptest.Policy("x", "web", nptest.Labels("app", "web"), nptest.Ingress(nptest.Peers(nptest.PodPeer(nptest.Labels("pod", "b"))), nptest.Port("", 80))),
				nptest.Policy("x", "ns", nptest.Labels("pod", "a"), nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels("team", "b"))))),
			},
			aIn: &Allow{Rules: []Rule{
				{Peers: peersOf("y/a", "y/b")},
				{Peers: peersOf("x/b"), Ports: []PortRange{ports(TCP, 80, 80)}},
			}},
			bIn: deny,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := handCluster()
			in.Policies = tc.policies
			m := Translate(in)
			if len(m.Warnings) > 0 {
				t.Errorf("warnings: %v", m.Warnings)
			}
			if len(m.Pods) != 2 || m.Pods[0].Name != "a" || m.Pods[1].Name != "b" {
				t.Fatalf("local pods = %+v, want x/a and x/b", m.Pods)
			}
			want := []PodPolicy{
				{Namespace: "x", Name: "a", Iface: "flock0000000a", Ingress: tc.aIn, Egress: tc.aOut},
				{Namespace: "x", Name: "b", Iface: "flock0000000b", Ingress: tc.bIn},
			}
			if d := cmp.Diff(want, m.Pods, cmpAddrs); d != "" {
				t.Errorf("pods (-want +got):\n%s", d)
			}
		})
	}
}

func TestTranslateSharesAllowLists(t *testing.T) {
	in := handCluster()
	in.Pods[1].Labels = in.Pods[0].Labels // x/b a replica of x/a
	in.Pods[1].Ports = in.Pods[0].Ports
	in.Policies = []networkingv1.NetworkPolicy{
		nptest.Policy("x", "p", nil, nptest.Types(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress),
			nptest.Ingress(nptest.Peers(nptest.PodPeer(all)), nptest.Port("", "http")), nptest.Egress(nil, nptest.Port("", "http"))),
	}
	m := Translate(in)
	a, b := m.Pods[0], m.Pods[1]
	if a.Ingress == nil || a.Ingress != b.Ingress || a.Egress == nil || a.Egress != b.Egress {
		t.Errorf("replicas do not share their allow-lists: %+v %+v", a, b)
	}
	in.Pods[1].Ports = []ContainerPort{{"http", TCP, 8080}}
	m = Translate(in)
	if m.Pods[0].Ingress == m.Pods[1].Ingress {
		t.Errorf("pods whose named port differs share an ingress allow-list")
	}
	if m.Pods[0].Egress != m.Pods[1].Egress {
		t.Errorf("egress named ports resolve on the destination, yet the allow-lists differ")
	}
}

func TestTranslateLocalPods(t *testing.T) {
	in := handCluster()
	in.Pods[2].Iface = "flock000000ff" // y/a is on n2: its veth is not ours
	in.Pods = append(in.Pods,
		Pod{Namespace: "x", Name: "pending", Node: "n1"},                               // no veth yet
		Pod{Namespace: "x", Name: "dup", Node: "n1", Iface: "flock0000000a"},           // x/a's veth
		Pod{Namespace: "x", Name: "bad", Node: "n1", Iface: `flock"; drop`},            // not a name
		Pod{Namespace: "x", Name: "long", Node: "n1", Iface: "flock0123456789abcdef0"}) // > 15
	m := Translate(in)
	var got []string
	for _, p := range m.Pods {
		got = append(got, p.Namespace+"/"+p.Name)
	}
	if d := cmp.Diff([]string{"x/a", "x/b"}, got); d != "" {
		t.Errorf("local pods (-want +got):\n%s", d)
	}
	if len(m.Warnings) != 3 {
		t.Errorf("warnings = %q, want one each for dup, bad and long", m.Warnings)
	}
}

func TestTranslateWarnings(t *testing.T) {
	bad := corev1.Protocol("ICMP")
	for _, tc := range []struct {
		name   string
		policy networkingv1.NetworkPolicy
		want   string
		aIn    *Allow
	}{
		{"bad cidr drops the peer, not the rule's other peers",
			nptest.Policy("x", "p", nptest.Labels("pod", "a"), nptest.Ingress(nptest.Peers(nptest.Block("10.0.0.0/33"), nptest.Block("10.0.0.0/8")))),
			"ipBlock cidr", &Allow{Rules: []Rule{{Peers: []Peer{block("10.0.0.0/8")}}}}},
		{"a rule whose only peer is unusable allows nothing",
			nptest.Policy("x", "p", nptest.Labels("pod", "a"), nptest.Ingress(nptest.Peers(nptest.Block("nope")))),
			"ipBlock cidr", &Allow{Rules: []Rule{}}},
		{"a rule whose only port is unusable allows nothing",
			nptest.Policy("x", "p", nptest.Labels("pod", "a"), nptest.Ingress(nil, networkingv1.NetworkPolicyPort{Protocol: &bad})),
			"not TCP, UDP or SCTP", &Allow{Rules: []Rule{}}},
		{"endPort below port",
			nptest.Policy("x", "p", nptest.Labels("pod", "a"), nptest.Ingress(nil, nptest.Port("", 90, 80))),
			"not within 1-65535", &Allow{Rules: []Rule{}}},
		{"empty peer",
			nptest.Policy("x", "p", nptest.Labels("pod", "a"), nptest.Ingress(nptest.Peers(networkingv1.NetworkPolicyPeer{}))),
			"no ipBlock, podSelector or namespaceSelector", &Allow{Rules: []Rule{}}},
		{"bad podSelector ignores the policy",
			nptest.Policy("x", "p", nptest.Expr("app", "Maybe")), "podSelector", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := handCluster()
			in.Policies = []networkingv1.NetworkPolicy{tc.policy}
			m := Translate(in)
			if len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], tc.want) {
				t.Errorf("warnings = %q, want one about %q", m.Warnings, tc.want)
			}
			if d := cmp.Diff(tc.aIn, m.Pods[0].Ingress, cmpAddrs); d != "" {
				t.Errorf("x/a ingress (-want +got):\n%s", d)
			}
		})
	}
}

func TestTranslateDeterministic(t *testing.T) {
	in := handCluster()
	in.Policies = []networkingv1.NetworkPolicy{
		nptest.Policy("x", "b", nil, nptest.Ingress(nptest.Peers(nptest.NSPeer(all)), nptest.Port("", "http"))),
		nptest.Policy("x", "a", nptest.Labels("pod", "a"), nptest.Egress(nptest.Peers(nptest.PodPeer(all), nptest.Block("10.0.0.0/8")), nptest.Port("", "http"), nptest.Port("", 53))),
	}
	want := Translate(in)
	for i, j := 0, len(in.Pods)-1; i < j; i, j = i+1, j-1 {
		in.Pods[i], in.Pods[j] = in.Pods[j], in.Pods[i]
	}
	in.Policies[0], in.Policies[1] = in.Policies[1], in.Policies[0]
	in.Namespaces[0], in.Namespaces[2] = in.Namespaces[2], in.Namespaces[0]
	if d := cmp.Diff(want, Translate(in), cmpAddrs); d != "" {
		t.Errorf("reordered input changed the model (-want +got):\n%s", d)
	}
}

func TestNormalize(t *testing.T) {
	orig := nptest.Policy("x", "p", nil, nptest.Egress(nptest.Peers()), func(s *networkingv1.NetworkPolicySpec) {
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{}
		s.Egress[0].Ports = []networkingv1.NetworkPolicyPort{{}}
	})
	got := Normalize(&orig)
	tcp := corev1.ProtocolTCP
	want := nptest.Policy("x", "p", nil, nptest.Types(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress), func(s *networkingv1.NetworkPolicySpec) {
		s.Egress = []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp}}}}
	})
	if d := cmp.Diff(&want, got); d != "" {
		t.Errorf("Normalize (-want +got):\n%s", d)
	}
	if orig.Spec.PolicyTypes != nil || orig.Spec.Egress[0].Ports[0].Protocol != nil {
		t.Errorf("Normalize modified its input: %+v", orig.Spec)
	}
}

func TestPermits(t *testing.T) {
	a := &Allow{Rules: []Rule{
		{Peers: []Peer{block("10.0.0.0/8", "10.1.0.0/16")}},
		{Peers: []Peer{block("2001:db8::/32")}, Ports: []PortRange{ports(TCP, 80, 81)}},
	}}
	for _, tc := range []struct {
		addr  string
		proto Protocol
		port  uint16
		want  bool
	}{
		{"10.2.3.4", 1, 0, true}, // a rule without ports: every protocol
		{"10.1.3.4", TCP, 80, false},
		{"::ffff:10.2.3.4", UDP, 9, true},
		{"2001:db8::1", TCP, 81, true},
		{"2001:db8::1", TCP, 82, false},
		{"2001:db8::1", UDP, 80, false},
		{"2001:db9::1", TCP, 80, false},
	} {
		if got := a.Permits(netip.MustParseAddr(tc.addr), tc.proto, tc.port); got != tc.want {
			t.Errorf("Permits(%s, %s, %d) = %v, want %v", tc.addr, tc.proto, tc.port, got, tc.want)
		}
	}
	if !(*Allow)(nil).Permits(netip.MustParseAddr("192.0.2.1"), TCP, 1) {
		t.Errorf("a nil allow-list (no policy) must allow everything")
	}
}
