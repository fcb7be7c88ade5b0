// Package proxy is the lab's stand-in for kube-proxy: on every node it
// sends traffic for a Service's ClusterIPs to the Ready pods the Service
// selects, with nftables DNAT in a table of its own, shaped like
// kube-proxy's nftables mode: one verdict map by ClusterIP, protocol and
// port in the prerouting and output nat hooks, a random choice among the
// endpoints, and hairpin traffic (a pod reaching itself through its
// Service) masqueraded so the reply comes back through the node.
//
// The lab has no controller manager, so the proxy finds the endpoints
// itself from the pods (no EndpointSlices). NetworkPolicy is enforced by
// flock in the forward hook, after this DNAT: the upstream suite's probes
// go to ClusterIPs, and so do the lab's.
package proxy

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The nftables table the proxy owns.
const (
	TableFamily = "inet"
	TableName   = "flock-lab-proxy"
)

// masqMark marks hairpin connections for masquerade, the bit kube-proxy
// uses for the same purpose.
const masqMark = "0x4000"

// Endpoint is one destination of a Service port.
type Endpoint struct {
	Pod  string // namespace/name
	Addr netip.Addr
	Port uint16
}

// Frontend is one ClusterIP, protocol and port of a Service with the
// endpoints of the ClusterIP's family, in a stable order.
type Frontend struct {
	Service   string // namespace/name
	ClusterIP netip.Addr
	Protocol  corev1.Protocol
	Port      uint16
	Endpoints []Endpoint
}

// Frontends lists what the Services expose: every ClusterIP × port of
// every Service with a selector, sorted by Service, port and family. Pods
// count as endpoints when they are in the Service's namespace, match its
// selector, are Ready and not being deleted, have an address of the
// ClusterIP's family, and (for a named targetPort) have a container port
// of that name and protocol.
func Frontends(services []*corev1.Service, pods []*corev1.Pod) []Frontend {
	services = slices.Clone(services)
	slices.SortFunc(services, func(a, b *corev1.Service) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	var out []Frontend
	for _, svc := range services {
		if len(svc.Spec.Selector) == 0 {
			continue // endpoints managed by hand: not in the lab
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		var members []*corev1.Pod
		for _, p := range pods {
			if p.Namespace == svc.Namespace && p.DeletionTimestamp == nil && ready(p) && sel.Matches(labels.Set(p.Labels)) {
				members = append(members, p)
			}
		}
		slices.SortFunc(members, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
		for _, sp := range svc.Spec.Ports {
			for _, ipStr := range svc.Spec.ClusterIPs {
				vip, err := netip.ParseAddr(ipStr)
				if err != nil {
					continue // "None" (headless) or not yet allocated
				}
				f := Frontend{Service: svc.Namespace + "/" + svc.Name, ClusterIP: vip, Protocol: sp.Protocol, Port: uint16(sp.Port)}
				for _, p := range members {
					port, ok := targetPort(p, sp)
					addr, has := podAddr(p, vip.Is4())
					if ok && has {
						f.Endpoints = append(f.Endpoints, Endpoint{Pod: p.Namespace + "/" + p.Name, Addr: addr, Port: port})
					}
				}
				out = append(out, f)
			}
		}
	}
	return out
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podAddr(p *corev1.Pod, v4 bool) (netip.Addr, bool) {
	for _, ip := range p.Status.PodIPs {
		a, err := netip.ParseAddr(ip.IP)
		if err == nil && a.Is4() == v4 {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// targetPort resolves a Service port's targetPort on one pod: a number
// (0 or unset: the Service port), or a container port's name.
func targetPort(p *corev1.Pod, sp corev1.ServicePort) (uint16, bool) {
	if sp.TargetPort.StrVal == "" {
		if sp.TargetPort.IntVal == 0 {
			return uint16(sp.Port), true
		}
		return uint16(sp.TargetPort.IntVal), true
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			proto := cp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			if cp.Name == sp.TargetPort.StrVal && proto == sp.Protocol {
				return uint16(cp.ContainerPort), true
			}
		}
	}
	return 0, false
}

// Render writes the nft script that replaces the proxy's table in one
// transaction. A frontend without endpoints gets no entry: its traffic
// goes on unchanged (kube-proxy would reject it).
func Render(fronts []Frontend) []byte {
	var elems [2][]string // by family: 0 IPv4, 1 IPv6
	var chains bytes.Buffer
	for i, f := range fronts {
		if len(f.Endpoints) == 0 {
			continue
		}
		fam, ip := 0, "ip"
		if f.ClusterIP.Is6() {
			fam, ip = 1, "ip6"
		}
		proto := strings.ToLower(string(f.Protocol))
		svcChain := fmt.Sprintf("svc_%d", i)
		elems[fam] = append(elems[fam], fmt.Sprintf("%s . %s . %d : goto %s", f.ClusterIP, proto, f.Port, svcChain))
		fmt.Fprintf(&chains, "\n\tchain %s {\n\t\tcomment %q\n", svcChain, fmt.Sprintf("%s %s %s/%d", f.Service, f.ClusterIP, proto, f.Port))
		var pick []string
		for j := range f.Endpoints {
			pick = append(pick, fmt.Sprintf("%d : goto %s_%d", j, svcChain, j))
		}
		fmt.Fprintf(&chains, "\t\tnumgen random mod %d vmap { %s }\n\t}\n", len(f.Endpoints), strings.Join(pick, ", "))
		for j, ep := range f.Endpoints {
			to := netip.AddrPortFrom(ep.Addr, ep.Port)
			fmt.Fprintf(&chains, "\n\tchain %s_%d {\n\t\tcomment %q\n", svcChain, j, ep.Pod)
			fmt.Fprintf(&chains, "\t\t%s saddr %s meta mark set meta mark | %s\n", ip, ep.Addr, masqMark)
			fmt.Fprintf(&chains, "\t\tmeta l4proto %s dnat %s to %s\n\t}\n", proto, ip, to)
		}
	}

	var b bytes.Buffer
	b.WriteString("# flock-lab Services (a kube-proxy stand-in): the whole table is replaced on every change.\n")
	fmt.Fprintf(&b, "table %s %s\ndelete table %s %s\ntable %s %s {\n", TableFamily, TableName, TableFamily, TableName, TableFamily, TableName)
	for fam, m := range []struct{ name, typ string }{{"services4", "ipv4_addr"}, {"services6", "ipv6_addr"}} {
		fmt.Fprintf(&b, "\tmap %s {\n\t\ttype %s . inet_proto . inet_service : verdict\n", m.name, m.typ)
		if len(elems[fam]) > 0 {
			fmt.Fprintf(&b, "\t\telements = {\n\t\t\t%s\n\t\t}\n", strings.Join(elems[fam], ",\n\t\t\t"))
		}
		b.WriteString("\t}\n\n")
	}
	lookup := "\t\tip daddr . meta l4proto . th dport vmap @services4\n\t\tip6 daddr . meta l4proto . th dport vmap @services6\n"
	// dstnat is -100, a name nft accepts in prerouting only.
	for _, hook := range []string{"prerouting", "output"} {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype nat hook %s priority -100; policy accept;\n%s\t}\n\n", hook, hook, lookup)
	}
	fmt.Fprintf(&b, "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tmeta mark & %s == %s masquerade\n\t}\n", masqMark, masqMark)
	b.Write(chains.Bytes())
	b.WriteString("}\n")
	return b.Bytes()
}
