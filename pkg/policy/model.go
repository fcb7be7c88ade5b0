package policy

import (
	"fmt"
	"net/netip"
	"strings"
)

// Protocol is an IP protocol number that a NetworkPolicy port can name.
type Protocol uint8

// The protocols of NetworkPolicy ports (IANA numbers).
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

// String is the protocol's nftables name.
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	}
	return fmt.Sprintf("%d", uint8(p))
}

// ParseProtocol reads a Kubernetes protocol name ("TCP", "UDP", "SCTP");
// an empty name is TCP, as the API server defaults it.
func ParseProtocol(s string) (Protocol, bool) {
	switch strings.ToUpper(s) {
	case "", "TCP":
		return TCP, true
	case "UDP":
		return UDP, true
	case "SCTP":
		return SCTP, true
	}
	return 0, false
}

// Namespace is what the translator needs of a namespace.
type Namespace struct {
	Name   string
	Labels map[string]string
}

// Pod is what the translator needs of a pod. Host-network pods and pods that
// have finished (their addresses may be reused) are left out by whoever
// builds the input: NetworkPolicy neither applies to them nor selects them.
type Pod struct {
	Namespace string
	Name      string
	// UID tells the pod from an earlier one of the same name; Translate
	// does not read it.
	UID    string
	Labels map[string]string
	// IPs are the pod's addresses (status.podIPs).
	IPs []netip.Addr
	// Node is the name of the node the pod runs on.
	Node string
	// Iface is the host end of the pod's veth (flock<8 hex>); known only
	// for pods on this node.
	Iface string
	// Ports are the pod's named container ports, for named NetworkPolicy
	// ports. Unnamed ports can be left out.
	Ports []ContainerPort
}

// Key is the pod's namespace/name.
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// ContainerPort is a named port of one of a pod's containers.
type ContainerPort struct {
	Name     string
	Protocol Protocol
	Port     uint16
}

// Model is what each local pod may receive and send: Translate's output and
// Render's input. Slices in it may be shared between pods; treat it as
// read-only.
type Model struct {
	// Pods are the local pods, sorted by namespace and name.
	Pods []PodPolicy
	// Warnings name the parts of the input that could not be used (invalid
	// selectors, CIDRs, ports, interface names). The API server rejects
	// all of these, so they only appear with hand-made input.
	Warnings []string
}

// PodPolicy is what one local pod may receive and send.
type PodPolicy struct {
	Namespace string
	Name      string
	Iface     string
	// Ingress is what the pod may receive; nil when no policy isolates the
	// pod for ingress (everything is allowed).
	Ingress *Allow
	// Egress is what the pod may send; nil when no policy isolates it for
	// egress.
	Egress *Allow
}

// Allow is an allow-list: traffic is allowed when any rule matches it; an
// Allow without rules allows nothing.
type Allow struct {
	Rules []Rule
}

// Rule allows traffic to (egress) or from (ingress) any of its peers, on
// any of its ports.
type Rule struct {
	// Peers are the remote addresses: pod addresses as /128 and /32, ipBlocks
	// as they are written, "any peer" as ::/0 and 0.0.0.0/0. Never empty.
	Peers []Peer
	// Ports are the allowed protocols and destination ports; nil means every
	// protocol and port.
	Ports []PortRange
}

// Peer is a prefix less some prefixes inside it.
type Peer struct {
	Prefix netip.Prefix
	Except []netip.Prefix
}

// PortRange is a protocol and an inclusive range of destination ports.
type PortRange struct {
	Protocol    Protocol
	First, Last uint16
}

// Contains says whether the peer matches an address.
func (p Peer) Contains(a netip.Addr) bool {
	if !p.Prefix.Contains(a) {
		return false
	}
	for _, e := range p.Except {
		if e.Contains(a) {
			return false
		}
	}
	return true
}

// Permits says whether the allow-list lets a packet through: remote is the
// peer's address (the source for ingress, the destination for egress), port
// the destination port (ignored for protocols without ports).
func (a *Allow) Permits(remote netip.Addr, proto Protocol, port uint16) bool {
	if a == nil {
		return true
	}
	remote = remote.Unmap()
	for _, r := range a.Rules {
		if r.permits(remote, proto, port) {
			return true
		}
	}
	return false
}

func (r *Rule) permits(remote netip.Addr, proto Protocol, port uint16) bool {
	if r.Ports != nil && !portsContain(r.Ports, proto, port) {
		return false
	}
	for _, p := range r.Peers {
		if p.Contains(remote) {
			return true
		}
	}
	return false
}

func portsContain(ports []PortRange, proto Protocol, port uint16) bool {
	for _, pr := range ports {
		if pr.Protocol == proto && pr.First <= port && port <= pr.Last {
			return true
		}
	}
	return false
}

// allPeers is the peer list of a rule without peers: every address.
var allPeers = []Peer{
	{Prefix: netip.PrefixFrom(netip.IPv6Unspecified(), 0)},
	{Prefix: netip.PrefixFrom(netip.IPv4Unspecified(), 0)},
}
