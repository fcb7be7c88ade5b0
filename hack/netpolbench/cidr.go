package main

import (
	"net/netip"

	"github.com/fritzlab/flock/pkg/policy"
)

// subtract is the smallest set of prefixes covering p less every prefix in
// except, in address order: how a ruleset without interval arithmetic
// (iptables, or a set of plain prefixes) writes an ipBlock with except.
func subtract(p netip.Prefix, except []netip.Prefix) []netip.Prefix {
	p = p.Masked()
	overlaps := false
	for _, e := range except {
		if e.Addr().Is4() != p.Addr().Is4() {
			continue
		}
		if e.Bits() <= p.Bits() && e.Contains(p.Addr()) {
			return nil // p lies inside an except
		}
		if p.Contains(e.Addr()) {
			overlaps = true
		}
	}
	if !overlaps {
		return []netip.Prefix{p}
	}
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	hi := netip.PrefixFrom(upperHalf(p), p.Bits()+1)
	return append(subtract(lo, except), subtract(hi, except)...)
}

// upperHalf is the first address of p's upper half.
func upperHalf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bit := p.Bits()
	b[bit/8] |= 0x80 >> (bit % 8)
	a, _ := netip.AddrFromSlice(b)
	return a
}

// peerPrefixes are a rule's peers of one family as plain prefixes.
func peerPrefixes(peers []policy.Peer, v6 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, pe := range peers {
		if pe.Prefix.Addr().Is6() != v6 {
			continue
		}
		out = append(out, subtract(pe.Prefix, pe.Except)...)
	}
	return out
}
