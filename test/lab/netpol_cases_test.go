package lab

import (
	"net/netip"
	"slices"

	"github.com/fritzlab/flock/pkg/policy/nptest"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// npPolicy selects pods by labels (none: every pod of the namespace); the
// namespace is the one it is applied in.
func npPolicy(name string, podLabels map[string]string, opts ...nptest.Option) *networkingv1.NetworkPolicy {
	np := nptest.Policy("", name, &metav1.LabelSelector{MatchLabels: podLabels}, opts...)
	return &np
}

var (
	npIngressOnly = nptest.Types(networkingv1.PolicyTypeIngress)
	npEgressOnly  = nptest.Types(networkingv1.PolicyTypeEgress)
	npBoth        = nptest.Types(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)
)

func npHost(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }

const (
	npProtoTCP  = corev1.ProtocolTCP
	npProtoUDP  = corev1.ProtocolUDP
	npProtoSCTP = corev1.ProtocolSCTP
	// npNSName is the label the API server puts on every namespace.
	npNSName = "kubernetes.io/metadata.name"
)

func npIs(key string, keys ...string) bool { return slices.Contains(keys, key) }

// npLargeCIDR is the /4 around an address, as the upstream suite builds
// the CIDR of its except cases (a block holding the pod and much more).
func npLargeCIDR(a netip.Addr) string { return netip.PrefixFrom(a, 4).Masked().String() }

// npCases are the upstream suite's TCP and UDP cases, each probed on all
// four protocol/port combinations; the SCTP cases are the ones that check
// that an SCTP rule allows no TCP (this kernel has no SCTP to probe).
//
// The comment line above each case names the upstream ginkgo.It it stands
// for ("(using UDP)": the It of the UDP context); several upstream cases
// may share one of ours, and a case with no such line has no upstream
// counterpart. test/lab/netpol_upstream.md lists the mapping.
func npCases() []npCase {
	everything := func(string, string, npKind) bool { return true }
	return []npCase{
		// upstream: "should support a 'default-deny-ingress' policy"
		// upstream: "should support a 'default-deny-ingress' policy" (using UDP)
		{"default-deny-ingress", []npStep{{
			"deny all ingress in x",
			func(n *npEnv) { n.apply("x", npPolicy("deny-ingress", nil, npIngressOnly)) },
			func(_, to string, _ npKind) bool { return npNS(to) != "x" },
		}}},
		// upstream: "should support a 'default-deny-all' policy"
		{"default-deny-all", []npStep{{
			"deny all ingress and egress in x",
			func(n *npEnv) { n.apply("x", npPolicy("deny-all", nil, npBoth)) },
			func(from, to string, _ npKind) bool { return npNS(from) != "x" && npNS(to) != "x" },
		}}},
		// upstream: "should enforce policy to allow traffic from pods within server namespace based on PodSelector"
		{"allow from pods of the namespace by podSelector", []npStep{{
			"x/a allows x/b",
			func(n *npEnv) {
				n.apply("x", npPolicy("x-a-allows-x-b", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(nptest.PodPeer(nptest.Labels("pod", "b"))))))
			},
			func(from, to string, _ npKind) bool { return to != "x/a" || from == "x/b" },
		}}},
		// upstream: "should enforce policy to allow ingress traffic for a target"
		{"allow ingress for a target in a default-deny namespace", []npStep{{
			"deny all in x, allow all to x/a",
			func(n *npEnv) {
				n.apply("x", npPolicy("deny-all", nil, npIngressOnly))
				n.apply("x", npPolicy("allow-all-to-a", map[string]string{"pod": "a"},
					nptest.Ingress(nptest.Peers(nptest.NSPodPeer(&metav1.LabelSelector{}, &metav1.LabelSelector{})))))
			},
			func(_, to string, _ npKind) bool { return npNS(to) != "x" || to == "x/a" },
		}}},
		// upstream: "should enforce policy to allow ingress traffic from pods in all namespaces"
		{"allow ingress from pods in all namespaces", []npStep{{
			"x/a allows every namespace",
			func(n *npEnv) {
				n.apply("x", npPolicy("allow-from-all-ns", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(nptest.NSPeer(&metav1.LabelSelector{})))))
			},
			everything,
		}}},
		// upstream: "should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector"
		{"allow only from another namespace by namespaceSelector", []npStep{{
			"x/a allows namespace y",
			func(n *npEnv) {
				n.apply("x", npPolicy("allow-ns-y", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels("ns", "y"))))))
			},
			func(from, to string, _ npKind) bool { return to != "x/a" || npNS(from) == "y" },
		}}},
		// upstream: "should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label"
		{"namespaceSelector with matchLabels using the default namespace label", []npStep{{
			"x/a allows kubernetes.io/metadata.name=y",
			func(n *npEnv) {
				n.apply("x", npPolicy("allow-ns-y-by-name", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels(npNSName, "y"))))))
			},
			func(from, to string, _ npKind) bool { return to != "x/a" || npNS(from) == "y" },
		}}},
		// upstream: "should enforce policy based on PodSelector with MatchExpressions"
		{"podSelector with matchExpressions", []npStep{{
			"x/a allows pod In (b)",
			func(n *npEnv) {
				n.apply("x", npPolicy("x-a-allows-x-b", map[string]string{"pod": "a"},
					nptest.Ingress(nptest.Peers(nptest.PodPeer(nptest.Expr("pod", metav1.LabelSelectorOpIn, "b"))))))
			},
			func(from, to string, _ npKind) bool { return to != "x/a" || from == "x/b" },
		}}},
		// upstream: "should enforce policy based on NamespaceSelector with MatchExpressions"
		{"namespaceSelector with matchExpressions", []npStep{{
			"x/a allows namespaces In (y)",
			func(n *npEnv) {
				n.apply("x", npPolicy("allow-ns-in-y", map[string]string{"pod": "a"},
					nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Expr(npNSName, metav1.LabelSelectorOpIn, "y"))))))
			},
			func(from, to string, _ npKind) bool { return to != "x/a" || npNS(from) == "y" },
		}}},
		// upstream: "should enforce policy based on PodSelector or NamespaceSelector"
		{"namespaceSelector or podSelector", []npStep{{
			"x/a allows namespaces NotIn (x), or pod b",
			func(n *npEnv) {
				n.apply("x", npPolicy("ns-or-pod", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(
					nptest.NSPeer(nptest.Expr(npNSName, metav1.LabelSelectorOpNotIn, "x")), nptest.PodPeer(nptest.Labels("pod", "b"))))))
			},
			func(from, to string, _ npKind) bool { return to != "x/a" || npNS(from) != "x" || from == "x/b" },
		}}},
		// upstream: "should enforce policy based on PodSelector and NamespaceSelector"
		{"podSelector and namespaceSelector", []npStep{{
			"x/a allows pod b of namespaces NotIn (x)",
			func(n *npEnv) {
				n.apply("x", npPolicy("ns-and-pod-b", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(nptest.NSPodPeer(
					nptest.Expr(npNSName, metav1.LabelSelectorOpNotIn, "x"), nptest.Labels("pod", "b"))))))
			},
			func(from, to string, _ npKind) bool { return to != "x/a" || npIs(from, "y/b", "z/b") },
		}}},
		// upstream: "should enforce policy based on Multiple PodSelectors and NamespaceSelectors"
		{"namespaceSelector and podSelector", []npStep{{
			"x/a allows pods In (b, c) of namespaces NotIn (x)",
			func(n *npEnv) {
				n.apply("x", npPolicy("ns-and-pod", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(nptest.NSPodPeer(
					nptest.Expr(npNSName, metav1.LabelSelectorOpNotIn, "x"), nptest.Expr("pod", metav1.LabelSelectorOpIn, "b", "c"))))))
			},
			func(from, to string, _ npKind) bool {
				return to != "x/a" || (npNS(from) != "x" && npName(from) != "a")
			},
		}}},
		// upstream: "should enforce policy based on any PodSelectors"
		{"any of several podSelectors", []npStep{{
			"x/a allows pod b, or pod c",
			func(n *npEnv) {
				n.apply("x", npPolicy("pod-b-or-c", map[string]string{"pod": "a"},
					nptest.Ingress(nptest.Peers(nptest.PodPeer(nptest.Labels("pod", "b")), nptest.PodPeer(nptest.Labels("pod", "c"))))))
			},
			func(from, to string, _ npKind) bool { return to != "x/a" || npIs(from, "x/b", "x/c") },
		}}},
		// upstream: "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector"
		// upstream: "should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector" (using UDP)
		{"allow only from a pod in a different namespace by podSelector and namespaceSelector", []npStep{{
			"x/a allows y/a",
			func(n *npEnv) {
				n.apply("x", npPolicy("ns-y-pod-a", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(nptest.NSPodPeer(nptest.Labels(npNSName, "y"), nptest.Labels("pod", "a"))))))
			},
			func(from, to string, _ npKind) bool { return to != "x/a" || from == "y/a" },
		}}},
		// upstream: "should enforce policy based on Ports"
		{"ports", []npStep{{
			"x/a allows namespace y on TCP 81",
			func(n *npEnv) {
				n.apply("x", npPolicy("allow-81", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels("ns", "y"))), nptest.Port(npProtoTCP, 81))))
			},
			func(from, to string, k npKind) bool { return to != "x/a" || (npNS(from) == "y" && k == npTCP81) },
		}}},
		// upstream: "should enforce policy based on Ports" (using UDP)
		{"UDP ports", []npStep{{
			"x/a allows namespace y on UDP 81",
			func(n *npEnv) {
				n.apply("x", npPolicy("allow-udp-81", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels(npNSName, "y"))), nptest.Port(npProtoUDP, 81))))
			},
			func(from, to string, k npKind) bool { return to != "x/a" || (npNS(from) == "y" && k == npUDP81) },
		}}},
		// upstream: "should enforce multiple, stacked policies with overlapping podSelectors"
		{"multiple stacked policies with overlapping podSelectors", []npStep{
			{
				"x/a allows namespace y on TCP 81",
				func(n *npEnv) {
					n.apply("x", npPolicy("allow-81", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels("ns", "y"))), nptest.Port(npProtoTCP, 81))))
				},
				func(from, to string, k npKind) bool { return to != "x/a" || (npNS(from) == "y" && k == npTCP81) },
			},
			{
				"and a second policy on TCP 80",
				func(n *npEnv) {
					n.apply("x", npPolicy("allow-80", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels("ns", "y"))), nptest.Port(npProtoTCP, 80))))
				},
				func(from, to string, k npKind) bool {
					return to != "x/a" || (npNS(from) == "y" && k.proto == npTCP80.proto)
				},
			},
		}},
		// upstream: "should support allow-all policy"
		{"allow-all policy", []npStep{{
			"every pod of x allows everything",
			func(n *npEnv) { n.apply("x", npPolicy("allow-all", nil, nptest.Ingress(nil))) },
			everything,
		}}},
		// upstream: "should allow ingress access on one named port"
		{"ingress on one named port", []npStep{{
			"pods of x allow only serve-81-tcp",
			func(n *npEnv) {
				n.apply("x", npPolicy("allow-81-named", nil, nptest.Ingress(nil, nptest.Port("", "serve-81-tcp"))))
			},
			func(_, to string, k npKind) bool { return npNS(to) != "x" || k == npTCP81 },
		}}},
		// upstream: "should allow ingress access from namespace on one named port"
		{"ingress from a namespace on one named port", []npStep{{
			"x/a allows namespace y on serve-80-tcp",
			func(n *npEnv) {
				n.apply("x", npPolicy("allow-y-80-named", map[string]string{"pod": "a"},
					nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels("ns", "y"))), nptest.Port(npProtoTCP, "serve-80-tcp"))))
			},
			func(from, to string, k npKind) bool { return to != "x/a" || (npNS(from) == "y" && k == npTCP80) },
		}}},
		// upstream: "should allow egress access on one named port"
		{"egress on one named port", []npStep{
			{
				"pods of x may send only to serve-80-tcp",
				func(n *npEnv) {
					n.apply("x", npPolicy("allow-egress-named", nil, nptest.Egress(nil, nptest.Port("", "serve-80-tcp")), npEgressOnly))
				},
				func(from, _ string, k npKind) bool { return npNS(from) != "x" || k == npTCP80 },
			},
			{
				"updated: and to serve-81-udp",
				func(n *npEnv) {
					n.apply("x", npPolicy("allow-egress-named", nil,
						nptest.Egress(nil, nptest.Port("", "serve-80-tcp"), nptest.Port(npProtoUDP, "serve-81-udp")), npEgressOnly))
				},
				func(from, _ string, k npKind) bool { return npNS(from) != "x" || k == npTCP80 || k == npUDP81 },
			},
		}},
		// upstream: "should enforce updated policy"
		{"updated policy", []npStep{
			{"allow-all in x", func(n *npEnv) { n.apply("x", npPolicy("mutate", nil, nptest.Ingress(nil))) }, everything},
			{
				"updated to deny-all",
				func(n *npEnv) { n.apply("x", npPolicy("mutate", nil, npIngressOnly)) },
				func(_, to string, _ npKind) bool { return npNS(to) != "x" },
			},
		}},
		// upstream: "should allow ingress access from updated namespace"
		{"ingress from an updated namespace", []npStep{
			{
				"x/a allows namespaces labelled ns2=updated (none yet)",
				func(n *npEnv) {
					n.apply("x", npPolicy("allow-ns2", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels("ns2", "updated"))))))
				},
				func(_, to string, _ npKind) bool { return to != "x/a" },
			},
			{
				"namespace y labelled ns2=updated",
				func(n *npEnv) { n.labelNS("y", "ns2", "updated") },
				func(from, to string, _ npKind) bool { return to != "x/a" || npNS(from) == "y" },
			},
		}},
		// upstream: "should allow ingress access from updated pod"
		{"ingress from an updated pod", []npStep{
			{
				"x/a allows pod=b,pod2=updated (none yet)",
				func(n *npEnv) {
					n.apply("x", npPolicy("allow-pod2", map[string]string{"pod": "a"}, nptest.Ingress(nptest.Peers(nptest.PodPeer(nptest.Labels("pod", "b", "pod2", "updated"))))))
				},
				func(_, to string, _ npKind) bool { return to != "x/a" },
			},
			{
				"x/b labelled pod2=updated",
				func(n *npEnv) { n.labelPod("x/b", "pod2", "updated") },
				func(from, to string, _ npKind) bool { return to != "x/a" || from == "x/b" },
			},
		}},
		// upstream: "should deny ingress access to updated pod"
		{"deny ingress to an updated pod", []npStep{
			{"deny ingress to target=isolated (none yet)", func(n *npEnv) {
				n.apply("x", npPolicy("deny-isolated", map[string]string{"target": "isolated"}, npIngressOnly))
			}, everything},
			{
				"x/a labelled target=isolated",
				func(n *npEnv) { n.labelPod("x/a", "target", "isolated") },
				func(_, to string, _ npKind) bool { return to != "x/a" },
			},
		}},
		// upstream: "should deny ingress from pods on other namespaces"
		{"deny ingress from other namespaces", []npStep{{
			"pods of x allow pods of x",
			func(n *npEnv) {
				n.apply("x", npPolicy("same-ns", nil, nptest.Ingress(nptest.Peers(nptest.PodPeer(&metav1.LabelSelector{})))))
			},
			func(from, to string, _ npKind) bool { return npNS(to) != "x" || npNS(from) == "x" },
		}}},
		// upstream: "should deny egress from pods based on PodSelector"
		{"deny egress from a pod", []npStep{{
			"x/a may send nothing",
			func(n *npEnv) { n.apply("x", npPolicy("deny-egress-a", map[string]string{"pod": "a"}, npEgressOnly)) },
			func(from, _ string, _ npKind) bool { return from != "x/a" },
		}}},
		// upstream: "should deny egress from all pods in a namespace"
		{"deny egress from all pods of a namespace", []npStep{{
			"pods of x may send nothing",
			func(n *npEnv) { n.apply("x", npPolicy("deny-egress-x", nil, npEgressOnly)) },
			func(from, _ string, _ npKind) bool { return npNS(from) != "x" },
		}}},
		// upstream: "should work with Ingress, Egress specified together"
		{"ingress and egress together", []npStep{{
			"x/a receives from x/b only, sends on TCP 80 only",
			func(n *npEnv) {
				n.apply("x", npPolicy("in-and-out", map[string]string{"pod": "a"}, npBoth,
					nptest.Ingress(nptest.Peers(nptest.PodPeer(nptest.Labels("pod", "b")))), nptest.Egress(nil, nptest.Port("", 80))))
			},
			func(from, to string, k npKind) bool {
				return (to != "x/a" || from == "x/b") && (from != "x/a" || k == npTCP80)
			},
		}}},
		// upstream: "should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)"
		{"egress denied on the client although the server allows", []npStep{{
			"x/a sends to y/a only; y/a and y/b receive from x/a only",
			func(n *npEnv) {
				fromXA := nptest.Ingress(nptest.Peers(nptest.NSPodPeer(nptest.Labels(npNSName, "x"), nptest.Labels("pod", "a"))))
				n.apply("x", npPolicy("to-y-a", map[string]string{"pod": "a"}, npEgressOnly, nptest.Egress(nptest.Peers(nptest.NSPodPeer(nptest.Labels(npNSName, "y"), nptest.Labels("pod", "a"))))))
				n.apply("y", npPolicy("a-from-x-a", map[string]string{"pod": "a"}, fromXA))
				n.apply("y", npPolicy("b-from-x-a", map[string]string{"pod": "b"}, fromXA))
			},
			func(from, to string, _ npKind) bool {
				return (from != "x/a" || to == "y/a") && (!npIs(to, "y/a", "y/b") || from == "x/a")
			},
		}}},
		// upstream: "should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector"
		{"egress to a server in another namespace by podSelector and namespaceSelector", []npStep{{
			"x/a sends to y/a only",
			func(n *npEnv) {
				n.apply("x", npPolicy("to-y-a", map[string]string{"pod": "a"}, npEgressOnly, nptest.Egress(nptest.Peers(nptest.NSPodPeer(nptest.Labels(npNSName, "y"), nptest.Labels("pod", "a"))))))
			},
			func(from, to string, _ npKind) bool { return from != "x/a" || to == "y/a" },
		}}},
		// upstream: "should enforce ingress policy allowing any port traffic to a server on a specific protocol"
		{"ingress on any port of one protocol", []npStep{{
			"x/a allows TCP only",
			func(n *npEnv) {
				n.apply("x", npPolicy("tcp-only", map[string]string{"pod": "a"}, nptest.Ingress(nil, nptest.Port(npProtoTCP, nil))))
			},
			func(_, to string, k npKind) bool { return to != "x/a" || k.proto == npTCP80.proto },
		}}},
		// upstream: "should enforce multiple ingress policies with ingress allow-all policy taking precedence"
		{"multiple ingress policies, allow-all taking precedence", []npStep{
			{
				"pods of x allow port 80 only",
				func(n *npEnv) { n.apply("x", npPolicy("allow-80", nil, nptest.Ingress(nil, nptest.Port("", 80)))) },
				func(_, to string, k npKind) bool { return npNS(to) != "x" || k == npTCP80 },
			},
			{"and allow everything", func(n *npEnv) { n.apply("x", npPolicy("allow-all", nil, nptest.Ingress(nil))) }, everything},
		}},
		// upstream: "should enforce multiple egress policies with egress allow-all policy taking precedence"
		{"multiple egress policies, allow-all taking precedence", []npStep{
			{
				"pods of x send to port 80 only",
				func(n *npEnv) {
					n.apply("x", npPolicy("egress-80", nil, npEgressOnly, nptest.Egress(nil, nptest.Port("", 80))))
				},
				func(from, _ string, k npKind) bool { return npNS(from) != "x" || k == npTCP80 },
			},
			{"and send anything", func(n *npEnv) { n.apply("x", npPolicy("egress-all", nil, npEgressOnly, nptest.Egress(nil))) }, everything},
		}},
		// upstream: "should stop enforcing policies after they are deleted"
		{"policies stop being enforced once deleted", []npStep{
			{
				"deny all in x",
				func(n *npEnv) { n.apply("x", npPolicy("deny-all", nil, npBoth)) },
				func(from, to string, _ npKind) bool { return npNS(from) != "x" && npNS(to) != "x" },
			},
			{"deleted", func(n *npEnv) { n.deletePolicy("x", "deny-all") }, everything},
		}},
		// upstream: "should allow egress access to server in CIDR block"
		{"egress to a server in a CIDR block", []npStep{{
			"x/a sends to y/b's addresses only",
			func(n *npEnv) {
				yb := n.pod("y/b")
				n.apply("x", npPolicy("to-y-b-cidr", map[string]string{"pod": "a"}, npEgressOnly,
					nptest.Egress(nptest.Peers(nptest.Block(npHost(yb.v6)), nptest.Block(npHost(yb.v4))))))
			},
			func(from, to string, _ npKind) bool { return from != "x/a" || to == "y/b" },
		}}},
		// upstream: "should enforce except clause while egress access to server in CIDR block"
		{"except clause of a CIDR block, and an IP in one policy's except allowed by another", []npStep{
			{
				"x/a sends to every pod pool less x/b's addresses",
				func(n *npEnv) {
					xb := n.pod("x/b")
					n.apply("x", npPolicy("pools-less-x-b", map[string]string{"pod": "a"}, npEgressOnly,
						nptest.Egress(nptest.Peers(nptest.Block("2001:db8:42::/48", npHost(xb.v6)), nptest.Block("198.18.0.0/16", npHost(xb.v4))))))
				},
				func(from, to string, _ npKind) bool { return from != "x/a" || to != "x/b" },
			},
			{
				"and a second policy allowing x/b's addresses",
				func(n *npEnv) {
					xb := n.pod("x/b")
					n.apply("x", npPolicy("to-x-b", map[string]string{"pod": "a"}, npEgressOnly,
						nptest.Egress(nptest.Peers(nptest.Block(npHost(xb.v6)), nptest.Block(npHost(xb.v4))))))
				},
				everything,
			},
		}},
		// upstream: "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed"
		{"an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed", []npStep{
			{
				"x/a sends to the /4 around x/b less x/b's addresses",
				func(n *npEnv) {
					xb := n.pod("x/b")
					n.apply("x", npPolicy("to-x-b-cidr", map[string]string{"pod": "a"}, npEgressOnly,
						nptest.Egress(nptest.Peers(nptest.Block(npLargeCIDR(xb.v6), npHost(xb.v6)), nptest.Block(npLargeCIDR(xb.v4), npHost(xb.v4))))))
				},
				func(from, to string, _ npKind) bool { return from != "x/a" || to != "x/b" },
			},
			{
				"the policy updated to x/b's addresses only",
				func(n *npEnv) {
					xb := n.pod("x/b")
					n.apply("x", npPolicy("to-x-b-cidr", map[string]string{"pod": "a"}, npEgressOnly,
						nptest.Egress(nptest.Peers(nptest.Block(npHost(xb.v6)), nptest.Block(npHost(xb.v4))))))
				},
				func(from, to string, _ npKind) bool { return from != "x/a" || to == "x/b" },
			},
		}},
		// upstream: "should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector"
		{"ingress and egress controlled independently", []npStep{
			{"x/a may send anything", func(n *npEnv) {
				n.apply("x", npPolicy("egress-all", map[string]string{"pod": "a"}, npEgressOnly, nptest.Egress(nil)))
			}, everything},
			{
				"and receives nothing",
				func(n *npEnv) { n.apply("x", npPolicy("deny-ingress", map[string]string{"pod": "a"}, npIngressOnly)) },
				func(_, to string, _ npKind) bool { return to != "x/a" },
			},
		}},
		// No upstream case: endPort is not in the upstream connectivity suite.
		{"endPort ranges", []npStep{{
			"x/a allows namespace y on TCP 81-85 and UDP 70-80",
			func(n *npEnv) {
				n.apply("x", npPolicy("ranges", map[string]string{"pod": "a"},
					nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels("ns", "y"))), nptest.Port(npProtoTCP, 81, 85), nptest.Port(npProtoUDP, 70, 80))))
			},
			func(from, to string, k npKind) bool {
				return to != "x/a" || (npNS(from) == "y" && (k == npTCP81 || k == npUDP80))
			},
		}}},
		// upstream: "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP"
		{"SCTP is not TCP", []npStep{{
			"deny ingress in x; x/a allows SCTP 80 and 81 only",
			func(n *npEnv) {
				n.apply("x", npPolicy("deny-ingress", nil, npIngressOnly))
				n.apply("x", npPolicy("sctp-only", map[string]string{"pod": "a"}, nptest.Ingress(nil, nptest.Port(npProtoSCTP, 80), nptest.Port(npProtoSCTP, 81))))
			},
			func(_, to string, _ npKind) bool { return npNS(to) != "x" },
		}}},
		// upstream: "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP"
		{"a pod selected by an SCTP-only policy is isolated", []npStep{{
			"x/a allows SCTP 80 only",
			func(n *npEnv) {
				n.apply("x", npPolicy("sctp-only", map[string]string{"pod": "a"}, nptest.Ingress(nil, nptest.Port(npProtoSCTP, 80))))
			},
			func(_, to string, _ npKind) bool { return to != "x/a" },
		}}},
		// upstream: "should not allow access by TCP when a policy specifies only UDP"
		{"UDP only allows no TCP", []npStep{{
			"x/a allows UDP 81 only",
			func(n *npEnv) {
				n.apply("x", npPolicy("udp-81", map[string]string{"pod": "a"}, nptest.Ingress(nil, nptest.Port(npProtoUDP, 81))))
			},
			func(_, to string, k npKind) bool { return to != "x/a" || k == npUDP81 },
		}}},
		// upstream: "should enforce policy based on NamespaceSelector with MatchExpressions using default ns label"
		{"egress by namespaceSelector matchExpressions on the default namespace label", []npStep{{
			"x/a sends to namespaces NotIn (y)",
			func(n *npEnv) {
				n.apply("x", npPolicy("not-y", map[string]string{"pod": "a"}, npEgressOnly,
					nptest.Egress(nptest.Peers(nptest.NSPeer(nptest.Expr(npNSName, metav1.LabelSelectorOpNotIn, "y"))))))
			},
			func(from, to string, _ npKind) bool { return from != "x/a" || npNS(to) != "y" },
		}}},
	}
}
