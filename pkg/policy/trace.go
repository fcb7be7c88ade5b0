package policy

import (
	"fmt"
	"net/netip"
	"strings"
)

// Decision is what one direction of a pod's policy does with a packet, and
// why: for operators (flockctl trace).
type Decision struct {
	// Isolated is false when no policy isolates the pod in this direction:
	// everything passes.
	Isolated bool
	Allowed  bool
	// Rule is the index of the first rule that allows the packet, -1 when
	// none does (then an isolated pod's default deny drops it).
	Rule int
	// RuleText describes that rule (its peers and ports).
	RuleText string
}

// Decide says whether the allow-list a lets a packet through, and which of
// its rules does: remote is the peer's address (the source for ingress,
// the destination for egress), port the destination port. It agrees with
// Permits, which the rendered table implements.
func Decide(a *Allow, remote netip.Addr, proto Protocol, port uint16) Decision {
	if a == nil {
		return Decision{Allowed: true, Rule: -1}
	}
	remote = remote.Unmap()
	for i := range a.Rules {
		if a.Rules[i].permits(remote, proto, port) {
			return Decision{Isolated: true, Allowed: true, Rule: i, RuleText: a.Rules[i].String()}
		}
	}
	return Decision{Isolated: true, Rule: -1}
}

// String describes a rule: "from/to <peers> on <ports>".
func (r Rule) String() string {
	peers := make([]string, 0, len(r.Peers))
	for _, p := range r.Peers {
		s := p.Prefix.String()
		if len(p.Except) > 0 {
			ex := make([]string, len(p.Except))
			for i, e := range p.Except {
				ex[i] = e.String()
			}
			s += " except " + strings.Join(ex, ",")
		}
		peers = append(peers, s)
	}
	ports := "every port"
	if r.Ports != nil {
		ps := make([]string, len(r.Ports))
		for i, p := range r.Ports {
			if p.First == p.Last {
				ps[i] = fmt.Sprintf("%s/%d", p.Protocol, p.First)
			} else {
				ps[i] = fmt.Sprintf("%s/%d-%d", p.Protocol, p.First, p.Last)
			}
		}
		ports = strings.Join(ps, ",")
	}
	return "peers " + strings.Join(peers, ",") + " on " + ports
}
