package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Random scenarios for the oracle tests: namespaces x, y, z and pods a, b, c
// as in the upstream e2e suite, with random labels, addresses, named ports,
// node placement and valid policies. Every choice is drawn from a chooser, so
// the fixed-seed test and the fuzzer share one generator.

type chooser interface {
	intn(n int) int
}

type randChooser struct{ r *rand.Rand }

func (c randChooser) intn(n int) int { return c.r.IntN(n) }

// byteChooser draws from fuzz input; an exhausted input draws zeros, so
// every input makes a scenario.
type byteChooser struct {
	b []byte
	i int
}

func (c *byteChooser) intn(n int) int {
	if c.i >= len(c.b) {
		return 0
	}
	v := int(c.b[c.i])
	c.i++
	return v % n
}

func pick[T any](c chooser, xs ...T) T { return xs[c.intn(len(xs))] }

func chance(c chooser, percent int) bool { return c.intn(100) < percent }

// scenario is an Input plus addresses that belong to no pod.
type scenario struct {
	in       *Input
	external []netip.Addr
}

const localNode = "n1"

var (
	nsNames   = []string{"x", "y", "z"}
	podNames  = []string{"a", "b", "c"}
	portNames = []string{"http", "dns", "alt"}
	protocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}
	cidrs     = []string{"10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/24", "192.0.2.0/24", "0.0.0.0/0",
		"2001:db8:1::/48", "2001:db8:1:1::/64", "2001:db8:1:2::/63", "::/0", "2001:db8:ff::/64"}
)

func genScenario(c chooser) *scenario {
	s := &scenario{in: &Input{Node: localNode}, external: []netip.Addr{
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.1.0.200"),
		netip.MustParseAddr("2001:db8:ff::1"), netip.MustParseAddr("2001:db8:1:1::200"),
	}}
	for i, ns := range nsNames {
		labels := map[string]string{"ns": ns, nsNameLabel: ns}
		if chance(c, 60) {
			labels["team"] = pick(c, "a", "b")
		}
		s.in.Namespaces = append(s.in.Namespaces, Namespace{Name: ns, Labels: labels})
		for j, name := range podNames {
			if j > 0 && chance(c, 25) {
				continue
			}
			s.in.Pods = append(s.in.Pods, genPod(c, i, j, ns, name))
		}
	}
	for i, n := 0, 1+c.intn(4); i < n; i++ {
		s.in.Policies = append(s.in.Policies, genPolicy(c, s, i))
	}
	return s
}

func genPod(c chooser, i, j int, ns, name string) Pod {
	p := Pod{Namespace: ns, Name: name, Labels: map[string]string{"pod": name}, Node: "n2"}
	if chance(c, 50) {
		p.Labels["app"] = pick(c, "web", "db")
	}
	switch c.intn(5) {
	case 0:
		p.IPs = []netip.Addr{netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, byte(i), 15: byte(j + 1)})}
	case 1:
		p.IPs = []netip.Addr{netip.AddrFrom4([4]byte{10, byte(i), 0, byte(j + 1)})}
	default:
		p.IPs = []netip.Addr{
			netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, byte(i), 15: byte(j + 1)}),
			netip.AddrFrom4([4]byte{10, byte(i), 0, byte(j + 1)}),
		}
	}
	if chance(c, 60) {
		p.Node = localNode
		p.Iface = fmt.Sprintf("flock%08x", i*16+j)
	}
	used := map[string]bool{}
	for _, n := range portNames {
		if !chance(c, 50) {
			continue
		}
		cp := ContainerPort{Name: n, Protocol: pick(c, TCP, UDP, SCTP), Port: uint16(80 + c.intn(3))}
		k := fmt.Sprint(cp.Protocol, cp.Port)
		if !used[k] {
			used[k] = true
			p.Ports = append(p.Ports, cp)
		}
	}
	return p
}

// genSelector draws a selector over keys, the first of which every object
// has.
func genSelector(c chooser, keys ...string) *metav1.LabelSelector {
	sel := &metav1.LabelSelector{}
	for n := c.intn(3); n > 0; n-- {
		key := pick(c, keys...)
		values := labelValues[key]
		if chance(c, 50) {
			if sel.MatchLabels == nil {
				sel.MatchLabels = map[string]string{}
			}
			sel.MatchLabels[key] = pick(c, values...)
			continue
		}
		req := metav1.LabelSelectorRequirement{Key: key}
		switch c.intn(4) {
		case 0:
			req.Operator = metav1.LabelSelectorOpIn
		case 1:
			// cyclonus reads NotIn as false when the key is missing;
			// Kubernetes (labels.Requirement) as true. Translate follows
			// Kubernetes (see TestSelectors), so the oracle only sees NotIn
			// on keys every object has.
			req.Operator = metav1.LabelSelectorOpNotIn
			req.Key = keys[0]
			values = labelValues[req.Key]
		case 2:
			req.Operator = metav1.LabelSelectorOpExists
		default:
			req.Operator = metav1.LabelSelectorOpDoesNotExist
		}
		if req.Operator == metav1.LabelSelectorOpIn || req.Operator == metav1.LabelSelectorOpNotIn {
			req.Values = []string{pick(c, values...)}
			if chance(c, 40) {
				req.Values = append(req.Values, pick(c, values...))
			}
		}
		sel.MatchExpressions = append(sel.MatchExpressions, req)
	}
	return sel
}

var labelValues = map[string][]string{
	"pod": podNames, "app": {"web", "db"}, "ns": nsNames, "team": {"a", "b"}, nsNameLabel: nsNames,
}

func genPolicy(c chooser, s *scenario, i int) networkingv1.NetworkPolicy {
	np := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: pick(c, nsNames...), Name: fmt.Sprintf("np%d", i)}}
	np.Spec.PodSelector = *genSelector(c, "pod", "app")
	switch c.intn(4) {
	case 1:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 2:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	case 3:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	switch c.intn(4) {
	case 0: // nil
	case 1:
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
	default:
		for n := 1 + c.intn(2); n > 0; n-- {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: genPeers(c, s), Ports: genPorts(c)})
		}
	}
	switch c.intn(4) {
	case 0:
	case 1:
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{}
	default:
		for n := 1 + c.intn(2); n > 0; n-- {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: genPeers(c, s), Ports: genPorts(c)})
		}
	}
	return np
}

func genPeers(c chooser, s *scenario) []networkingv1.NetworkPolicyPeer {
	n := c.intn(4)
	if n == 0 {
		if chance(c, 50) {
			return []networkingv1.NetworkPolicyPeer{}
		}
		return nil
	}
	var peers []networkingv1.NetworkPolicyPeer
	for ; n > 0; n-- {
		var p networkingv1.NetworkPolicyPeer
		switch c.intn(4) {
		case 0:
			p.PodSelector = genSelector(c, "pod", "app")
		case 1:
			p.NamespaceSelector = genSelector(c, pick(c, "ns", nsNameLabel), "team", "ns", nsNameLabel)
		case 2:
			p.PodSelector = genSelector(c, "pod", "app")
			p.NamespaceSelector = genSelector(c, pick(c, "ns", nsNameLabel), "team", "ns", nsNameLabel)
		default:
			p.IPBlock = genBlock(c, s)
		}
		peers = append(peers, p)
	}
	return peers
}

// genBlock draws a CIDR and excepts strictly inside it, often around a pod's
// or an external address so that they matter.
func genBlock(c chooser, s *scenario) *networkingv1.IPBlock {
	cidr := netip.MustParsePrefix(pick(c, cidrs...))
	b := &networkingv1.IPBlock{CIDR: cidr.String()}
	var inside []netip.Addr
	for _, p := range s.in.Pods {
		for _, a := range p.IPs {
			if cidr.Contains(a) {
				inside = append(inside, a)
			}
		}
	}
	for _, a := range s.external {
		if cidr.Contains(a) {
			inside = append(inside, a)
		}
	}
	for n := c.intn(3); n > 0 && len(inside) > 0; n-- {
		a := pick(c, inside...)
		bits := cidr.Bits() + 1 + c.intn(a.BitLen()-cidr.Bits())
		b.Except = append(b.Except, netip.PrefixFrom(a, bits).Masked().String())
	}
	return b
}

func genPorts(c chooser) []networkingv1.NetworkPolicyPort {
	n := c.intn(4)
	if n == 0 {
		if chance(c, 50) {
			return []networkingv1.NetworkPolicyPort{}
		}
		return nil
	}
	var ports []networkingv1.NetworkPolicyPort
	for ; n > 0; n-- {
		var p networkingv1.NetworkPolicyPort
		if chance(c, 70) {
			proto := pick(c, protocols...)
			p.Protocol = &proto
		}
		switch c.intn(6) {
		case 0: // every port of the protocol
		case 1, 2:
			v := intstr.FromInt32(int32(80 + c.intn(3)))
			p.Port = &v
		case 3, 4:
			v := intstr.FromString(pick(c, append(portNames, "nope")...))
			p.Port = &v
		default:
			first := int32(79 + c.intn(3))
			v, end := intstr.FromInt32(first), first+int32(c.intn(3))
			p.Port, p.EndPort = &v, &end
		}
		ports = append(ports, p)
	}
	return ports
}
