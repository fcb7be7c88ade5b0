package policy

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// Input is everything Translate reads: the cluster's NetworkPolicies,
// namespaces and pods, and the node whose pods are enforced here.
type Input struct {
	// Node is this node's name; its pods that have an Iface are the local
	// pods, the ones Translate computes allow-lists for.
	Node       string
	Policies   []networkingv1.NetworkPolicy
	Namespaces []Namespace
	Pods       []Pod
}

// nsNameLabel is set by the API server on every namespace (1.22+); namespace
// selectors commonly use it, so it is added when the input lacks it.
const nsNameLabel = "kubernetes.io/metadata.name"

// Translate computes what each local pod may receive and send. It is pure and
// deterministic: the same input (in any order) gives the same Model.
func Translate(in *Input) *Model {
	t := newTranslator(in)
	m := &Model{}
	ingressAllows := map[string]*Allow{}
	egressAllows := map[string]*Allow{}
	for _, p := range t.local {
		pp := PodPolicy{Namespace: p.Namespace, Name: p.Name, Iface: p.Iface}
		var inKey, outKey strings.Builder
		var in, out []Rule
		isoIn, isoOut := false, false
		for _, c := range t.byNS[p.Namespace] {
			if !c.sel.Matches(labelSet(p.Labels)) {
				continue
			}
			if c.ingress {
				isoIn = true
				in = t.ingressRules(c, p, in, &inKey)
			}
			if c.egress {
				isoOut = true
				out = append(out, t.egressRules(c)...)
				outKey.WriteString(strconv.Itoa(c.index))
				outKey.WriteByte(',')
			}
		}
		if isoIn {
			pp.Ingress = shared(ingressAllows, inKey.String(), in)
		}
		if isoOut {
			pp.Egress = shared(egressAllows, outKey.String(), out)
		}
		m.Pods = append(m.Pods, pp)
	}
	m.Warnings = t.warnings()
	return m
}

// shared returns one Allow per distinct key, so that pods with the same
// allow-list (replicas of one workload) share it, and Render writes it once.
func shared(allows map[string]*Allow, key string, rules []Rule) *Allow {
	if a, ok := allows[key]; ok {
		return a
	}
	a := &Allow{Rules: rules}
	if a.Rules == nil {
		a.Rules = []Rule{}
	}
	allows[key] = a
	return a
}

// ingressRules appends the rules of a policy's ingress section for the local
// pod p, resolving named ports on p, and writes what identifies them to key.
func (t *translator) ingressRules(c *compiled, p *Pod, rules []Rule, key *strings.Builder) []Rule {
	for i, r := range t.rules(c, true) {
		if r.dead {
			continue
		}
		key.WriteString(strconv.Itoa(c.index))
		key.WriteByte('/')
		key.WriteString(strconv.Itoa(i))
		if r.allPorts {
			rules = append(rules, Rule{Peers: r.peers, Ports: nil})
			key.WriteByte(',')
			continue
		}
		ports := slices.Clip(r.numeric)
		if len(r.named) > 0 {
			resolved := resolve(r.named, p)
			ports = append(ports, resolved...)
			key.WriteString(portsKey(resolved))
		}
		key.WriteByte(',')
		if len(ports) > 0 {
			rules = append(rules, Rule{Peers: r.peers, Ports: ports})
		}
	}
	return rules
}

// egressRules are a policy's egress rules, the same for every pod it selects:
// named ports are resolved on each destination pod.
func (t *translator) egressRules(c *compiled) []Rule {
	if c.egressDone {
		return c.egressOut
	}
	c.egressDone = true
	for _, r := range t.rules(c, false) {
		if r.dead {
			continue
		}
		if r.allPorts {
			c.egressOut = append(c.egressOut, Rule{Peers: r.peers})
			continue
		}
		if len(r.numeric) > 0 && len(r.peers) > 0 {
			c.egressOut = append(c.egressOut, Rule{Peers: r.peers, Ports: r.numeric})
		}
		if len(r.named) > 0 {
			c.egressOut = append(c.egressOut, t.namedEgress(r)...)
		}
	}
	return c.egressOut
}

// namedEgress resolves a rule's named ports on every pod the rule's peers
// reach, grouping the pods' addresses by the ports their names resolve to.
func (t *translator) namedEgress(r *cRule) []Rule {
	if rules, ok := t.namedCache[r.key]; ok {
		return rules
	}
	rules := t.resolveNamedEgress(r)
	t.namedCache[r.key] = rules
	return rules
}

func (t *translator) resolveNamedEgress(r *cRule) []Rule {
	var rules []Rule
	group := map[string]int{}
	add := func(p *Pod, addrs []netip.Addr) {
		ports := resolve(r.named, p)
		if len(ports) == 0 || len(addrs) == 0 {
			return
		}
		k := portsKey(ports)
		i, ok := group[k]
		if !ok {
			i = len(rules)
			group[k] = i
			rules = append(rules, Rule{Ports: ports})
		}
		for _, a := range addrs {
			rules[i].Peers = append(rules[i].Peers, hostPeer(a))
		}
	}
	if r.allPeers {
		for _, p := range t.pods {
			add(p, p.IPs)
		}
		return rules
	}
	// A pod reached both by a selector and an ipBlock is resolved once.
	seen := map[*Pod]bool{}
	for _, p := range r.selPods {
		seen[p] = true
	}
	for _, p := range t.pods {
		if seen[p] {
			add(p, p.IPs)
			continue
		}
		var in []netip.Addr
		for _, a := range p.IPs {
			for _, b := range r.blocks {
				if b.Contains(a) {
					in = append(in, a)
					break
				}
			}
		}
		add(p, in)
	}
	return rules
}

// resolve finds a pod's container ports for named policy ports: a name
// matches a container port of that name and the policy port's protocol.
func resolve(named []namedPort, p *Pod) []PortRange {
	var out []PortRange
	for _, n := range named {
		for _, cp := range p.Ports {
			if cp.Name == n.name && cp.Protocol == n.protocol && cp.Port != 0 {
				pr := PortRange{Protocol: cp.Protocol, First: cp.Port, Last: cp.Port}
				if !slices.Contains(out, pr) {
					out = append(out, pr)
				}
			}
		}
	}
	return out
}

func portsKey(ports []PortRange) string {
	b := make([]byte, 0, 8*len(ports))
	for _, p := range ports {
		b = strconv.AppendUint(b, uint64(p.Protocol), 10)
		b = append(b, '/')
		b = strconv.AppendUint(b, uint64(p.First), 10)
		b = append(b, '-')
		b = strconv.AppendUint(b, uint64(p.Last), 10)
		b = append(b, ',')
	}
	return string(b)
}

func hostPeer(a netip.Addr) Peer {
	return Peer{Prefix: netip.PrefixFrom(a, a.BitLen())}
}
