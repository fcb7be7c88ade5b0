package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// translator holds the indexed input of one Translate call.
type translator struct {
	node       string
	nsLabels   map[string]labels.Set
	namespaces []string          // sorted
	podsByNS   map[string][]*Pod // sorted by name
	pods       []*Pod            // sorted by namespace and name
	local      []*Pod            // sorted by namespace and name
	byNS       map[string][]*compiled
	peerCache  map[string][]*Pod
	peersCache map[string][]Peer // a rule's peers by its selectors and blocks
	namedCache map[string][]Rule // namedEgress results by peers and names
	warned     map[string]bool
}

// compiled is a normalized policy with its selector parsed; its rules are
// compiled on first use, since most policies select no local pod.
type compiled struct {
	index           int
	key             string // namespace/name
	np              *networkingv1.NetworkPolicy
	sel             labels.Selector
	ingress, egress bool
	in, out         []*cRule
	inDone, outDone bool
	egressOut       []Rule
	egressDone      bool
}

// cRule is one ingress or egress rule, its peers resolved to addresses.
type cRule struct {
	dead     bool   // matches nothing (every peer or port was unusable)
	allPeers bool   // no from/to: any address
	peers    []Peer // addresses of the selected pods, then the ipBlocks
	selPods  []*Pod // pods matched by the selector peers
	blocks   []Peer // the ipBlock peers
	allPorts bool   // no ports: every protocol and port
	numeric  []PortRange
	named    []namedPort
	// key identifies the peers and named ports, so that rules of
	// different policies resolve named egress ports once.
	key string
}

type namedPort struct {
	name     string
	protocol Protocol
}

func labelSet(m map[string]string) labels.Set { return labels.Set(m) }

func newTranslator(in *Input) *translator {
	t := &translator{
		node:       in.Node,
		nsLabels:   map[string]labels.Set{},
		podsByNS:   map[string][]*Pod{},
		byNS:       map[string][]*compiled{},
		peerCache:  map[string][]*Pod{},
		peersCache: map[string][]Peer{},
		namedCache: map[string][]Rule{},
		warned:     map[string]bool{},
	}
	for _, ns := range in.Namespaces {
		l := maps.Clone(ns.Labels)
		if l == nil {
			l = map[string]string{}
		}
		l[nsNameLabel] = ns.Name
		t.nsLabels[ns.Name] = l
	}
	ifaces := map[string]string{}
	for i := range in.Pods {
		p := in.Pods[i]
		p.IPs = usableIPs(p.IPs)
		if _, ok := t.nsLabels[p.Namespace]; !ok {
			t.nsLabels[p.Namespace] = labels.Set{nsNameLabel: p.Namespace}
		}
		t.pods = append(t.pods, &p)
	}
	slices.SortStableFunc(t.pods, func(a, b *Pod) int {
		return strings.Compare(a.Key(), b.Key())
	})
	for _, p := range t.pods {
		t.podsByNS[p.Namespace] = append(t.podsByNS[p.Namespace], p)
		if p.Iface == "" || (in.Node != "" && p.Node != in.Node) {
			continue
		}
		if err := validIface(p.Iface); err != nil {
			t.warn("pod %s: %v", p.Key(), err)
			continue
		}
		if other, dup := ifaces[p.Iface]; dup {
			t.warn("pod %s: interface %s is already pod %s's", p.Key(), p.Iface, other)
			continue
		}
		ifaces[p.Iface] = p.Key()
		t.local = append(t.local, p)
	}
	t.namespaces = slices.Sorted(maps.Keys(t.nsLabels))

	policies := make([]*networkingv1.NetworkPolicy, len(in.Policies))
	for i := range in.Policies {
		policies[i] = &in.Policies[i]
	}
	slices.SortStableFunc(policies, func(a, b *networkingv1.NetworkPolicy) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	for i, np := range policies {
		if c := t.compile(i, np); c != nil {
			t.byNS[c.np.Namespace] = append(t.byNS[c.np.Namespace], c)
		}
	}
	return t
}

func usableIPs(ips []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range ips {
		if a.IsValid() {
			out = append(out, a.Unmap().WithZone(""))
		}
	}
	return out
}

// validIface accepts what Linux accepts as an interface name, less the
// characters that would need quoting in nftables.
func validIface(name string) error {
	if len(name) == 0 || len(name) > 15 {
		return fmt.Errorf("interface name %q: want 1 to 15 characters", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("interface name %q: only letters, digits, '-', '_' and '.' are supported", name)
		}
	}
	return nil
}

func (t *translator) warn(format string, args ...any) {
	t.warned[fmt.Sprintf(format, args...)] = true
}

func (t *translator) warnings() []string {
	if len(t.warned) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(t.warned))
}

func (t *translator) compile(index int, orig *networkingv1.NetworkPolicy) *compiled {
	np := Normalize(orig)
	key := np.Namespace + "/" + np.Name
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		t.warn("policy %s: podSelector: %v (policy ignored)", key, err)
		return nil
	}
	return &compiled{
		index:   index,
		key:     key,
		np:      np,
		sel:     sel,
		ingress: hasType(np, networkingv1.PolicyTypeIngress),
		egress:  hasType(np, networkingv1.PolicyTypeEgress),
	}
}

// rules compiles a policy's ingress or egress rules once.
func (t *translator) rules(c *compiled, ingress bool) []*cRule {
	if ingress {
		if !c.inDone {
			c.inDone = true
			for i, r := range c.np.Spec.Ingress {
				c.in = append(c.in, t.compileRule(c, fmt.Sprintf("ingress[%d]", i), r.From, r.Ports))
			}
		}
		return c.in
	}
	if !c.outDone {
		c.outDone = true
		for i, r := range c.np.Spec.Egress {
			c.out = append(c.out, t.compileRule(c, fmt.Sprintf("egress[%d]", i), r.To, r.Ports))
		}
	}
	return c.out
}

func (t *translator) compileRule(c *compiled, where string, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) *cRule {
	r := &cRule{}
	t.compilePorts(c, where, r, ports)
	var key strings.Builder
	for _, n := range r.named {
		fmt.Fprintf(&key, "%s/%s,", n.protocol, n.name)
	}
	if len(peers) == 0 {
		r.allPeers = true
		r.peers = allPeers
		r.key = key.String() + "*"
		return r
	}
	// peerKey identifies the peers alone (the selectors and blocks, in
	// order): rules of different policies with the same peers share one
	// slice of them, which a cluster-wide selector makes thousands long.
	var peerKey strings.Builder
	seen := map[*Pod]bool{}
	for i, peer := range peers {
		what := fmt.Sprintf("policy %s: %s peer %d", c.key, where, i)
		switch {
		case peer.IPBlock != nil:
			if b, ok := t.block(what, peer.IPBlock); ok {
				r.blocks = append(r.blocks, b)
				fmt.Fprintf(&peerKey, "|%v", b)
			}
		case peer.PodSelector == nil && peer.NamespaceSelector == nil:
			t.warn("%s: no ipBlock, podSelector or namespaceSelector (peer ignored)", what)
		default:
			pods, cacheKey, ok := t.selectPods(what, c.np.Namespace, peer.PodSelector, peer.NamespaceSelector)
			if !ok {
				continue
			}
			peerKey.WriteString("|" + cacheKey)
			for _, p := range pods {
				if !seen[p] {
					seen[p] = true
					r.selPods = append(r.selPods, p)
				}
			}
		}
	}
	key.WriteString(peerKey.String())
	r.key = key.String()
	slices.SortFunc(r.selPods, func(a, b *Pod) int { return strings.Compare(a.Key(), b.Key()) })
	if cached, ok := t.peersCache[peerKey.String()]; ok {
		r.peers = cached
	} else {
		for _, p := range r.selPods {
			for _, a := range p.IPs {
				r.peers = append(r.peers, hostPeer(a))
			}
		}
		r.peers = slices.Clip(append(r.peers, r.blocks...))
		t.peersCache[peerKey.String()] = r.peers
	}
	if len(r.peers) == 0 {
		r.dead = true
	}
	return r
}

func (t *translator) compilePorts(c *compiled, where string, r *cRule, ports []networkingv1.NetworkPolicyPort) {
	if len(ports) == 0 {
		r.allPorts = true
		return
	}
	for i, p := range ports {
		what := fmt.Sprintf("policy %s: %s port %d", c.key, where, i)
		proto, ok := ParseProtocol(string(*p.Protocol))
		if !ok {
			t.warn("%s: protocol %q is not TCP, UDP or SCTP (port ignored)", what, *p.Protocol)
			continue
		}
		switch {
		case p.Port == nil:
			if p.EndPort != nil {
				t.warn("%s: endPort without port (port ignored)", what)
				continue
			}
			r.numeric = append(r.numeric, PortRange{Protocol: proto, First: 0, Last: 65535})
		case p.Port.Type == intstr.String:
			if p.EndPort != nil {
				t.warn("%s: endPort with a named port (port ignored)", what)
				continue
			}
			r.named = append(r.named, namedPort{name: p.Port.StrVal, protocol: proto})
		default:
			first, last := p.Port.IntVal, p.Port.IntVal
			if p.EndPort != nil {
				last = *p.EndPort
			}
			if first < 1 || last > 65535 || last < first {
				t.warn("%s: port range %d-%d is not within 1-65535 (port ignored)", what, first, last)
				continue
			}
			r.numeric = append(r.numeric, PortRange{Protocol: proto, First: uint16(first), Last: uint16(last)})
		}
	}
	if len(r.numeric) == 0 && len(r.named) == 0 {
		r.dead = true
	}
}

// block parses an ipBlock. An unusable except is dropped with a warning
// (so the block is wider than meant), an unusable CIDR drops the peer.
func (t *translator) block(what string, b *networkingv1.IPBlock) (Peer, bool) {
	p, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		t.warn("%s: ipBlock cidr: %v (peer ignored)", what, err)
		return Peer{}, false
	}
	peer := Peer{Prefix: unmapPrefix(p.Masked())}
	for _, s := range b.Except {
		e, err := netip.ParsePrefix(s)
		if err != nil {
			t.warn("%s: ipBlock except: %v (peer ignored)", what, err)
			return Peer{}, false
		}
		peer.Except = append(peer.Except, unmapPrefix(e.Masked()))
	}
	return peer, true
}

// unmapPrefix turns ::ffff:a.b.c.d/n (n >= 96) into a.b.c.d/(n-96): packets
// carry IPv4 addresses in IPv4 headers, never mapped.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// selectPods returns the pods a podSelector/namespaceSelector peer selects,
// in pod order. A nil namespaceSelector means the policy's namespace, a nil
// podSelector every pod of the selected namespaces.
func (t *translator) selectPods(what, policyNS string, podSel, nsSel *metav1.LabelSelector) ([]*Pod, string, bool) {
	ps := labels.Everything()
	if podSel != nil {
		var err error
		if ps, err = metav1.LabelSelectorAsSelector(podSel); err != nil {
			t.warn("%s: podSelector: %v (peer ignored)", what, err)
			return nil, "", false
		}
	}
	var nss []string
	cacheKey := ""
	if nsSel == nil {
		nss = []string{policyNS}
		cacheKey = "=" + policyNS
	} else {
		s, err := metav1.LabelSelectorAsSelector(nsSel)
		if err != nil {
			t.warn("%s: namespaceSelector: %v (peer ignored)", what, err)
			return nil, "", false
		}
		cacheKey = "~" + s.String()
		for _, ns := range t.namespaces {
			if s.Matches(t.nsLabels[ns]) {
				nss = append(nss, ns)
			}
		}
	}
	cacheKey += "\x00" + ps.String()
	if pods, ok := t.peerCache[cacheKey]; ok {
		return pods, cacheKey, true
	}
	var pods []*Pod
	for _, ns := range nss {
		for _, p := range t.podsByNS[ns] {
			if ps.Matches(labelSet(p.Labels)) {
				pods = append(pods, p)
			}
		}
	}
	t.peerCache[cacheKey] = pods
	return pods, cacheKey, true
}
