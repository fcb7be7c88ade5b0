package policytest

import (
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"github.com/fritzlab/flock/pkg/policy"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Random scenarios for the oracle tests (pkg/policy's TestOracle and
// FuzzTranslate against cyclonus, test/oracle against kube-network-policies):
// namespaces x, y, z and pods a, b, c as in the upstream e2e suite, with
// random labels, addresses, named ports, node placement and valid policies.
// Every choice is drawn from a Chooser, so the fixed-seed tests and the
// fuzzers share one generator.

// Chooser is where a generator draws its choices from.
type Chooser interface {
	// Intn returns a number in [0, n).
	Intn(n int) int
}

// RandChooser draws from a seeded generator.
type RandChooser struct{ R *rand.Rand }

// NewRandChooser returns a RandChooser seeded with a PCG of the two seeds.
func NewRandChooser(seed1, seed2 uint64) RandChooser {
	return RandChooser{rand.New(rand.NewPCG(seed1, seed2))}
}

// Intn implements Chooser.
func (c RandChooser) Intn(n int) int { return c.R.IntN(n) }

// ByteChooser draws from fuzz input, one byte a choice; an exhausted input
// draws zeros, so every input makes a scenario.
type ByteChooser struct {
	B []byte
	i int
}

// Intn implements Chooser.
func (c *ByteChooser) Intn(n int) int {
	if c.i >= len(c.B) {
		return 0
	}
	v := int(c.B[c.i])
	c.i++
	return v % n
}

// FuzzSeeds are seed inputs for fuzz targets that feed a ByteChooser.
func FuzzSeeds() [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	var out [][]byte
	for range 8 {
		b := make([]byte, 256)
		for j := range b {
			b[j] = byte(r.IntN(256))
		}
		out = append(out, b)
	}
	return out
}

func pick[T any](c Chooser, xs ...T) T { return xs[c.Intn(len(xs))] }

func chance(c Chooser, percent int) bool { return c.Intn(100) < percent }

// Scenario is an Input plus addresses that belong to no pod.
type Scenario struct {
	In *policy.Input
	// External are addresses of no pod, some inside the generated ipBlocks.
	External []netip.Addr
}

// Options changes what GenScenario draws.
type Options struct {
	// NotInAnyKey lets a NotIn requirement name a label key that some
	// objects lack. cyclonus reads NotIn as false for an object without
	// the key, Kubernetes (labels.Selector) as true, so a cyclonus oracle
	// leaves this off and only sees NotIn on keys every object has.
	NotInAnyKey bool
}

// LocalNode is the node of a Scenario's Input; its pods with an Iface are
// the local ones.
const LocalNode = "n1"

// nsNameLabel is the label the API server puts on every namespace.
const nsNameLabel = "kubernetes.io/metadata.name"

var (
	nsNames   = []string{"x", "y", "z"}
	podNames  = []string{"a", "b", "c"}
	portNames = []string{"http", "dns", "alt"}
	protocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}
	cidrs     = []string{"10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/24", "192.0.2.0/24", "0.0.0.0/0",
		"2001:db8:1::/48", "2001:db8:1:1::/64", "2001:db8:1:2::/63", "::/0", "2001:db8:ff::/64"}
)

// GenScenario draws a scenario: namespaces x, y, z (labels ns, team and
// kubernetes.io/metadata.name), pod a in each and b, c in most (labels pod
// and app; IPv6, IPv4 or both; on LocalNode or not; named ports http, dns,
// alt on TCP, UDP or SCTP ports 80-82), and one to four valid policies with
// every kind of peer, port, port range and selector operator. Probes are
// meant for ports 79-83.
func GenScenario(c Chooser, o Options) *Scenario {
	g := &gen{c: c, o: o}
	s := &Scenario{In: &policy.Input{Node: LocalNode}, External: []netip.Addr{
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.1.0.200"),
		netip.MustParseAddr("2001:db8:ff::1"), netip.MustParseAddr("2001:db8:1:1::200"),
	}}
	for i, ns := range nsNames {
		labels := map[string]string{"ns": ns, nsNameLabel: ns}
		if chance(c, 60) {
			labels["team"] = pick(c, "a", "b")
		}
		s.In.Namespaces = append(s.In.Namespaces, policy.Namespace{Name: ns, Labels: labels})
		for j, name := range podNames {
			if j > 0 && chance(c, 25) {
				continue
			}
			s.In.Pods = append(s.In.Pods, g.pod(i, j, ns, name))
		}
	}
	for i, n := 0, 1+c.Intn(4); i < n; i++ {
		s.In.Policies = append(s.In.Policies, g.policy(s, i))
	}
	return s
}

type gen struct {
	c Chooser
	o Options
}

func (g *gen) pod(i, j int, ns, name string) policy.Pod {
	c := g.c
	p := policy.Pod{Namespace: ns, Name: name, Labels: map[string]string{"pod": name}, Node: "n2"}
	if chance(c, 50) {
		p.Labels["app"] = pick(c, "web", "db")
	}
	switch c.Intn(5) {
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
		p.Node = LocalNode
		p.Iface = fmt.Sprintf("flock%08x", i*16+j)
	}
	used := map[string]bool{}
	for _, n := range portNames {
		if !chance(c, 50) {
			continue
		}
		cp := policy.ContainerPort{Name: n, Protocol: pick(c, policy.TCP, policy.UDP, policy.SCTP), Port: uint16(80 + c.Intn(3))}
		k := fmt.Sprint(cp.Protocol, cp.Port)
		if !used[k] {
			used[k] = true
			p.Ports = append(p.Ports, cp)
		}
	}
	return p
}

// selector draws a selector over keys, the first of which every object has.
func (g *gen) selector(keys ...string) *metav1.LabelSelector {
	c := g.c
	sel := &metav1.LabelSelector{}
	for n := c.Intn(3); n > 0; n-- {
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
		switch c.Intn(4) {
		case 0:
			req.Operator = metav1.LabelSelectorOpIn
		case 1:
			req.Operator = metav1.LabelSelectorOpNotIn
			if !g.o.NotInAnyKey {
				req.Key = keys[0]
				values = labelValues[req.Key]
			}
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

func (g *gen) policy(s *Scenario, i int) networkingv1.NetworkPolicy {
	c := g.c
	np := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: pick(c, nsNames...), Name: fmt.Sprintf("np%d", i)}}
	np.Spec.PodSelector = *g.selector("pod", "app")
	switch c.Intn(4) {
	case 1:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 2:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	case 3:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	switch c.Intn(4) {
	case 0: // nil
	case 1:
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
	default:
		for n := 1 + c.Intn(2); n > 0; n-- {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: g.peers(s), Ports: g.ports()})
		}
	}
	switch c.Intn(4) {
	case 0:
	case 1:
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{}
	default:
		for n := 1 + c.Intn(2); n > 0; n-- {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: g.peers(s), Ports: g.ports()})
		}
	}
	return np
}

func (g *gen) peers(s *Scenario) []networkingv1.NetworkPolicyPeer {
	c := g.c
	n := c.Intn(4)
	if n == 0 {
		if chance(c, 50) {
			return []networkingv1.NetworkPolicyPeer{}
		}
		return nil
	}
	var peers []networkingv1.NetworkPolicyPeer
	for ; n > 0; n-- {
		var p networkingv1.NetworkPolicyPeer
		switch c.Intn(4) {
		case 0:
			p.PodSelector = g.selector("pod", "app")
		case 1:
			p.NamespaceSelector = g.selector(pick(c, "ns", nsNameLabel), "team", "ns", nsNameLabel)
		case 2:
			p.PodSelector = g.selector("pod", "app")
			p.NamespaceSelector = g.selector(pick(c, "ns", nsNameLabel), "team", "ns", nsNameLabel)
		default:
			p.IPBlock = g.block(s)
		}
		peers = append(peers, p)
	}
	return peers
}

// block draws a CIDR and excepts strictly inside it, often around a pod's
// or an external address so that they matter.
func (g *gen) block(s *Scenario) *networkingv1.IPBlock {
	c := g.c
	cidr := netip.MustParsePrefix(pick(c, cidrs...))
	b := &networkingv1.IPBlock{CIDR: cidr.String()}
	var inside []netip.Addr
	for _, p := range s.In.Pods {
		for _, a := range p.IPs {
			if cidr.Contains(a) {
				inside = append(inside, a)
			}
		}
	}
	for _, a := range s.External {
		if cidr.Contains(a) {
			inside = append(inside, a)
		}
	}
	for n := c.Intn(3); n > 0 && len(inside) > 0; n-- {
		a := pick(c, inside...)
		bits := cidr.Bits() + 1 + c.Intn(a.BitLen()-cidr.Bits())
		b.Except = append(b.Except, netip.PrefixFrom(a, bits).Masked().String())
	}
	return b
}

func (g *gen) ports() []networkingv1.NetworkPolicyPort {
	c := g.c
	n := c.Intn(4)
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
		switch c.Intn(6) {
		case 0: // every port of the protocol
		case 1, 2:
			v := intstr.FromInt32(int32(80 + c.Intn(3)))
			p.Port = &v
		case 3, 4:
			v := intstr.FromString(pick(c, append(portNames, "nope")...))
			p.Port = &v
		default:
			first := int32(79 + c.Intn(3))
			v, end := intstr.FromInt32(first), first+int32(c.Intn(3))
			p.Port, p.EndPort = &v, &end
		}
		ports = append(ports, p)
	}
	return ports
}

// APIDefaults returns the policy as a client reads it back from the API
// server, written apart from policy.Normalize so that an oracle does not
// lean on the code it checks: a JSON round trip (empty lists such as
// `ingress: []` do not survive it: they come back nil, which denies), then
// the API server's defaulting (SetDefaults_NetworkPolicy: an empty
// policyTypes is [Ingress], plus Egress when there are egress rules; a port
// without a protocol is TCP). The input is not modified.
func APIDefaults(np networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	b, err := json.Marshal(&np)
	if err != nil {
		panic(err)
	}
	out := &networkingv1.NetworkPolicy{}
	if err := json.Unmarshal(b, out); err != nil {
		panic(err)
	}
	if len(out.Spec.PolicyTypes) == 0 {
		out.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(out.Spec.Egress) > 0 {
			out.Spec.PolicyTypes = append(out.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
	tcp := corev1.ProtocolTCP
	for _, r := range out.Spec.Ingress {
		for i := range r.Ports {
			if r.Ports[i].Protocol == nil {
				r.Ports[i].Protocol = &tcp
			}
		}
	}
	for _, r := range out.Spec.Egress {
		for i := range r.Ports {
			if r.Ports[i].Protocol == nil {
				r.Ports[i].Protocol = &tcp
			}
		}
	}
	return out
}

// Endpoint is one side of a probe: a pod (with one of its addresses) or an
// external address (Pod nil).
type Endpoint struct {
	Pod  *policy.Pod
	Addr netip.Addr
}

// Local says whether the endpoint is a pod on LocalNode with an interface,
// one whose allow-lists Translate computes.
func (e Endpoint) Local() bool { return e.Pod != nil && e.Pod.Iface != "" }

func (e Endpoint) String() string {
	if e.Pod == nil {
		return e.Addr.String()
	}
	return e.Pod.Key() + "@" + e.Addr.String()
}

// Probe is one packet to ask about: source, destination, protocol and
// destination port.
type Probe struct {
	Src, Dst Endpoint
	Protocol policy.Protocol
	Port     uint16
}

func (p Probe) String() string {
	return fmt.Sprintf("%s -> %s %s/%d", p.Src, p.Dst, p.Protocol, p.Port)
}

// NamedPort is the name of the destination pod's container port that the
// probe goes to (same number and protocol), or "".
func (p Probe) NamedPort() string {
	if p.Dst.Pod == nil {
		return ""
	}
	for _, cp := range p.Dst.Pod.Ports {
		if cp.Port == p.Port && cp.Protocol == p.Protocol {
			return cp.Name
		}
	}
	return ""
}

// Endpoints are every pod address and every external address.
func (s *Scenario) Endpoints() []Endpoint {
	var eps []Endpoint
	for i := range s.In.Pods {
		p := &s.In.Pods[i]
		for _, a := range p.IPs {
			eps = append(eps, Endpoint{p, a})
		}
	}
	for _, a := range s.External {
		eps = append(eps, Endpoint{nil, a})
	}
	return eps
}

// Probes are all pairs of endpoints of one family with at least one local
// end, on TCP, UDP and SCTP, ports 79 to 83.
func (s *Scenario) Probes() iter.Seq[Probe] {
	eps := s.Endpoints()
	return func(yield func(Probe) bool) {
		for _, src := range eps {
			for _, dst := range eps {
				if src.Addr.Is4() != dst.Addr.Is4() || (!src.Local() && !dst.Local()) {
					continue
				}
				for _, proto := range []policy.Protocol{policy.TCP, policy.UDP, policy.SCTP} {
					for port := uint16(79); port <= 83; port++ {
						if !yield(Probe{src, dst, proto, port}) {
							return
						}
					}
				}
			}
		}
	}
}

// Describe prints the scenario for a failing test to show: one line for
// each namespace and pod, then the policies as YAML, as written (before
// APIDefaults), each after a comment naming its lists that are empty
// rather than missing.
func Describe(s *Scenario) string {
	var b strings.Builder
	for _, ns := range s.In.Namespaces {
		fmt.Fprintf(&b, "namespace %s %s\n", ns.Name, labelString(ns.Labels))
	}
	for _, p := range s.In.Pods {
		fmt.Fprintf(&b, "pod %s %s ips=%v node=%s", p.Key(), labelString(p.Labels), p.IPs, p.Node)
		if p.Iface != "" {
			fmt.Fprintf(&b, " iface=%s (local)", p.Iface)
		}
		for _, cp := range p.Ports {
			fmt.Fprintf(&b, " port:%s=%s/%d", cp.Name, cp.Protocol, cp.Port)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "external %v\n", s.External)
	for _, np := range s.In.Policies {
		y, err := yaml.Marshal(np)
		if err != nil {
			y = []byte(err.Error())
		}
		b.WriteString("---\n")
		if e := emptyLists(np); len(e) > 0 {
			fmt.Fprintf(&b, "# empty, not missing (YAML drops them): %s\n", strings.Join(e, ", "))
		}
		b.Write(y)
	}
	return b.String()
}

// emptyLists names the lists of a policy that are empty but not nil.
func emptyLists(np networkingv1.NetworkPolicy) []string {
	var out []string
	empty := func(n int, isNil bool, path string) {
		if n == 0 && !isNil {
			out = append(out, path)
		}
	}
	empty(len(np.Spec.Ingress), np.Spec.Ingress == nil, "spec.ingress")
	empty(len(np.Spec.Egress), np.Spec.Egress == nil, "spec.egress")
	for i, r := range np.Spec.Ingress {
		empty(len(r.From), r.From == nil, fmt.Sprintf("spec.ingress[%d].from", i))
		empty(len(r.Ports), r.Ports == nil, fmt.Sprintf("spec.ingress[%d].ports", i))
	}
	for i, r := range np.Spec.Egress {
		empty(len(r.To), r.To == nil, fmt.Sprintf("spec.egress[%d].to", i))
		empty(len(r.Ports), r.Ports == nil, fmt.Sprintf("spec.egress[%d].ports", i))
	}
	return out
}

func labelString(l map[string]string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		kv = append(kv, k+"="+l[k])
	}
	return "{" + strings.Join(kv, ",") + "}"
}

// Tally counts an oracle's verdicts, to show that a run checked both.
type Tally struct{ Allowed, Denied int }

// Add counts one verdict.
func (t *Tally) Add(ok bool) {
	if ok {
		t.Allowed++
	} else {
		t.Denied++
	}
}
