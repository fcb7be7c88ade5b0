package annotations

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// KeyNamespaceAnycastCIDRs is a namespace annotation: comma-separated
// CIDRs, the only ranges the namespace's pods may claim as anycast (on top
// of the NodeConfig's allowedCIDRs). Present but empty, or invalid, allows
// nothing.
const KeyNamespaceAnycastCIDRs = "flock.fritzlab.net/anycast-cidrs"

// Reserved is a range no pod may claim as anycast, and what it is (for the
// warning): another node's pod pool, the cluster's Service range, a node's
// own address.
type Reserved struct {
	Prefix netip.Prefix
	What   string
}

// AnycastLimits bound the anycast addresses a pod may claim. The default
// is safe: a node whose NodeConfig sets no spec.anycast.allowedCIDRs grants
// none, so a pod cannot announce an arbitrary prefix (another node's pool,
// a Service range, a well-known address) to the upstream router.
type AnycastLimits struct {
	// Allowed is the NodeConfig's spec.anycast.allowedCIDRs; empty: the
	// node grants no anycast address at all.
	Allowed []netip.Prefix
	// Namespace, when NamespaceSet, restricts further: the pod's namespace's
	// anycast-cidrs annotation (empty: nothing is allowed).
	Namespace    []netip.Prefix
	NamespaceSet bool
	// Pools are the node's own pod pools.
	Pools []netip.Prefix
	// Reserved are never granted, whatever Allowed says.
	Reserved []Reserved
}

// Anycast parses the anycast annotation: a comma-separated list of the
// addresses a pod serves, each written as an address or as a host prefix
// (/128, /32). Entries are trimmed and empty entries ignored. v6 and v4 are
// the pod's own addresses (the zero Addr for a family the pod lacks).
//
// Without lim.Allowed the whole annotation is refused with one warning.
// Otherwise an entry is skipped with a warning, and the others still
// served, when it is not an address or host prefix; is not a global
// unicast address (BIRD's renderer refuses the rest, and a link-local or
// loopback anycast address means nothing beyond the node); is an
// IPv4-mapped IPv6 address or has a zone; is of a family the pod has no
// address of (the node routes it via the pod's own address of the same
// family, which NDP and ARP resolve, so an IPv4 anycast address on an
// IPv6-only pod cannot be reached); lies inside one of the node's pools or
// a reserved range; or lies outside lim.Allowed or, when set, the
// namespace's ranges.
//
// The pools are refused because IPAM owns them: an anycast address there
// could be, or later become, another pod's own address, whose host route it
// would collide with, and the node already announces the whole pool, so
// announcing part of it Ready-gated would gate nothing. Reserved ranges
// are refused because announcing them would hijack them: a more specific
// route to another node's pods, to Service IPs or to a node.
//
// Duplicates are dropped silently; the result is sorted and nil when there is
// nothing to serve. An absent annotation yields nothing; one that is present
// but empty yields a warning, as for the other annotations.
func Anycast(pod map[string]string, v6, v4 netip.Addr, lim AnycastLimits) ([]netip.Addr, []Warning) {
	v, ok := pod[KeyAnycast]
	if !ok {
		return nil, nil
	}
	var (
		out     []netip.Addr
		ws      []Warning
		entries int
	)
	skip := func(format string, args ...any) {
		ws = append(ws, Warning{Key: KeyAnycast, Value: v, Reason: fmt.Sprintf(format, args...) + "; skipping it"})
	}
	for e := range strings.SplitSeq(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		entries++
		if len(lim.Allowed) == 0 {
			continue
		}
		a, err := parseHost(e)
		if err != nil {
			skip("has entry %q that %v", e, err)
			continue
		}
		if reason := anycastProblem(a, v6, v4, lim); reason != "" {
			skip("has entry %q that %s", e, reason)
			continue
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if entries == 0 {
		return nil, []Warning{{Key: KeyAnycast, Value: v, Reason: "is empty; the pod serves no anycast address"}}
	}
	if len(lim.Allowed) == 0 {
		return nil, []Warning{{Key: KeyAnycast, Value: v, Reason: "is refused: the node's NodeConfig sets no spec.anycast.allowedCIDRs, so no pod on it may serve anycast addresses"}}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, ws
}

// ParseAnycastCIDRs parses the namespace annotation anycast-cidrs: CIDRs
// without host bits, comma-separated, trimmed; empty entries are ignored
// and an empty list allows nothing.
func ParseAnycastCIDRs(v string) ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	for e := range strings.SplitSeq(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return nil, fmt.Errorf("namespace annotation %s=%q: entry %q is not a CIDR", KeyNamespaceAnycastCIDRs, v, e)
		}
		if p.Addr().Zone() != "" || p.Addr().Is4In6() {
			return nil, fmt.Errorf("namespace annotation %s=%q: entry %q must be a plain IPv6 or IPv4 CIDR", KeyNamespaceAnycastCIDRs, v, e)
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("namespace annotation %s=%q: entry %q has host bits set (write %s)", KeyNamespaceAnycastCIDRs, v, e, p.Masked())
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// parseHost reads an address or a host prefix (an address with /128 or /32).
func parseHost(s string) (netip.Addr, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Addr{}, errors.New("is not an IP address")
		}
		return a, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Addr{}, errors.New("is not an IP address or host prefix")
	}
	if !p.IsSingleIP() {
		return netip.Addr{}, fmt.Errorf("is not a host address (/%d, want /%d)", p.Bits(), p.Addr().BitLen())
	}
	return p.Addr(), nil
}

// anycastProblem says why a cannot be served by the pod, or "" when it can.
// It continues the sentence `has entry "x" that …`.
func anycastProblem(a netip.Addr, v6, v4 netip.Addr, lim AnycastLimits) string {
	switch {
	case a.Zone() != "":
		return "has a zone"
	case a.Is4In6():
		return "is an IPv4-mapped IPv6 address (write the IPv4 address)"
	case !a.IsGlobalUnicast():
		return "is not a global unicast address (link-local, loopback, multicast, unspecified and broadcast addresses cannot be anycast)"
	case a.Is6() && !v6.IsValid():
		return "is IPv6 but the pod has no IPv6 address to route it via"
	case a.Is4() && !v4.IsValid():
		return "is IPv4 but the pod has no IPv4 address to route it via"
	}
	for _, p := range lim.Pools {
		if p.IsValid() && p.Contains(a) {
			return fmt.Sprintf("lies inside the node's pod pool %s (those addresses are for IPAM)", p.Masked())
		}
	}
	for _, r := range lim.Reserved {
		if r.Prefix.IsValid() && r.Prefix.Contains(a) {
			return fmt.Sprintf("lies inside %s %s, which no pod may claim", r.What, r.Prefix.Masked())
		}
	}
	if !inAny(lim.Allowed, a) {
		return "is outside the NodeConfig's spec.anycast.allowedCIDRs (" + prefixList(lim.Allowed) + ")"
	}
	if lim.NamespaceSet && !inAny(lim.Namespace, a) {
		return "is outside the namespace's " + KeyNamespaceAnycastCIDRs + " (" + prefixList(lim.Namespace) + ")"
	}
	return ""
}

func inAny(ps []netip.Prefix, a netip.Addr) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(a) })
}

func prefixList(ps []netip.Prefix) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.String()
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
