package annotations

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/fritzlab/flock/pkg/iid"
)

// CIDRs parses a cidr6 or cidr4 annotation: a comma-separated list of
// prefixes of one family (v6 says which). Entries are trimmed and empty
// entries ignored, so "a, b," works. An invalid entry, one of the other
// family or one with host bits set is skipped with a warning; the others are
// still used, because an operator who lists three ranges and mistypes one
// expects the other two to apply, not the whole pool.
//
// The result distinguishes "not said" from "said, but nothing valid", which
// Narrow treats differently: it is nil when the annotation is absent or has
// no entries at all (an empty value falls through with a warning, like the
// other annotations), and non-nil (possibly empty) otherwise.
func CIDRs(pod map[string]string, key string, v6 bool) ([]netip.Prefix, []Warning) {
	v, ok := pod[key]
	if !ok {
		return nil, nil
	}
	var ws []Warning
	skip := func(format string, args ...any) {
		ws = append(ws, Warning{Key: key, Value: v, Reason: fmt.Sprintf(format, args...) + "; skipping it"})
	}
	family := "IPv4"
	if v6 {
		family = "IPv6"
	}
	out := []netip.Prefix{}
	entries := 0
	for e := range strings.SplitSeq(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		entries++
		p, err := netip.ParsePrefix(e)
		switch {
		case err != nil:
			skip("has entry %q that is not a CIDR (%v)", e, err)
		case !ofFamily(p, v6):
			skip("has entry %q that is not an %s CIDR", e, family)
		case p != p.Masked():
			skip("has entry %q with host bits set (the network is %s)", e, p.Masked())
		default:
			out = append(out, p)
		}
	}
	if entries == 0 {
		return nil, []Warning{{Key: key, Value: v, Reason: "is empty; using the whole node pool"}}
	}
	return out, ws
}

// Narrow turns the parsed CIDRs into the ranges of pool to allocate from, in
// the annotation's order (IPAM takes the first range with a free address, so
// order is the operator's preference). Per CIDR: the pool itself or a
// supernet of it gives the whole pool; a subnet of the pool gives that
// subnet; anything else (disjoint, other family, or an IPv6 subnet too long
// for an interface identifier to be derived in) is skipped with a warning.
// Duplicates are dropped silently: trying a range twice cannot help.
//
// cidrs == nil means the pod said nothing: the result is [pool]. Otherwise
// the result may be empty, which the caller must treat as an error rather
// than fall back to the whole pool: the operator asked for a part of it.
// Warnings leave Key and Value empty for the caller to fill in; Narrow does
// not know which annotation the CIDRs came from.
func Narrow(pool netip.Prefix, cidrs []netip.Prefix) ([]netip.Prefix, []Warning) {
	if !pool.IsValid() {
		return nil, nil
	}
	pool = pool.Masked()
	if cidrs == nil {
		return []netip.Prefix{pool}, nil
	}
	var ws []Warning
	skip := func(format string, args ...any) {
		ws = append(ws, Warning{Reason: fmt.Sprintf(format, args...) + "; skipping it"})
	}
	ranges := []netip.Prefix{}
	for _, c := range cidrs {
		var r netip.Prefix
		switch m := c.Masked(); {
		case !c.IsValid():
			skip("has an invalid entry")
			continue
		case !ofFamily(c, pool.Addr().Is6()):
			skip("has entry %s of another family than node pool %s", c, pool)
			continue
		case m.Bits() <= pool.Bits() && m.Contains(pool.Addr()):
			r = pool
		case m.Bits() > pool.Bits() && pool.Contains(m.Addr()):
			r = m
		default:
			skip("has entry %s outside node pool %s", c, pool)
			continue
		}
		if r.Addr().Is6() && r.Bits() > iid.MaxBits {
			skip("has entry %s, longer than /%d: too narrow to derive an IPv6 interface identifier in", c, iid.MaxBits)
			continue
		}
		if !slices.Contains(ranges, r) {
			ranges = append(ranges, r)
		}
	}
	return ranges, ws
}

// ofFamily says whether p is a plain IPv6 (v6) or IPv4 prefix. An
// IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) is neither: it is in no IPv6
// pool, and accepting it as IPv4 would hide a typo behind a misleading
// "outside the pool" warning.
func ofFamily(p netip.Prefix, v6 bool) bool {
	if v6 {
		return p.Addr().Is6() && !p.Addr().Is4In6()
	}
	return p.Addr().Is4()
}
