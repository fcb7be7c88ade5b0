package annotations

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Anycast parses the anycast annotation: a comma-separated list of the
// addresses a pod serves, each written as an address or as a host prefix
// (/128, /32). Entries are trimmed and empty entries ignored. v6 and v4 are
// the pod's own addresses (the zero Addr for a family the pod lacks),
// allowed is the NodeConfig's spec.anycast.allowedCIDRs (empty: any address)
// and pools are the node's pod pools.
//
// An entry is skipped with a warning, and the others still served, when it
// is not an address or host prefix; is not a global unicast address (BIRD's
// renderer refuses the rest, and a link-local or loopback anycast address
// means nothing beyond the node); is an IPv4-mapped IPv6 address or has a
// zone; is of a family the pod has no address of (the node routes it via the
// pod's own address of the same family, which NDP and ARP resolve, so an
// IPv4 anycast address on an IPv6-only pod cannot be reached); lies outside
// allowed when that is set; or lies inside one of the node's pools.
//
// The pools are refused because IPAM owns them: an anycast address there
// could be, or later become, another pod's own address, whose host route it
// would collide with, and the node already announces the whole pool, so
// announcing part of it Ready-gated would gate nothing.
//
// Duplicates are dropped silently; the result is sorted and nil when there is
// nothing to serve. An absent annotation yields nothing; one that is present
// but empty yields a warning, as for the other annotations.
func Anycast(pod map[string]string, v6, v4 netip.Addr, allowed, pools []netip.Prefix) ([]netip.Addr, []Warning) {
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
		a, err := parseHost(e)
		if err != nil {
			skip("has entry %q that %v", e, err)
			continue
		}
		if reason := anycastProblem(a, v6, v4, allowed, pools); reason != "" {
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
	slices.SortFunc(out, netip.Addr.Compare)
	return out, ws
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
func anycastProblem(a netip.Addr, v6, v4 netip.Addr, allowed, pools []netip.Prefix) string {
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
	for _, p := range pools {
		if p.IsValid() && p.Contains(a) {
			return fmt.Sprintf("lies inside the node's pod pool %s (those addresses are for IPAM)", p.Masked())
		}
	}
	if len(allowed) > 0 && !slices.ContainsFunc(allowed, func(p netip.Prefix) bool { return p.Contains(a) }) {
		names := make([]string, len(allowed))
		for i, p := range allowed {
			names[i] = p.String()
		}
		return "is outside the NodeConfig's spec.anycast.allowedCIDRs (" + strings.Join(names, ", ") + ")"
	}
	return ""
}
