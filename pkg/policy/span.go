package policy

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
)

// span is an inclusive range of addresses of one family. nftables interval
// sets must not hold overlapping elements, so every address set is reduced
// to sorted, disjoint spans before it is written. Addresses are 128-bit
// numbers (IPv4 as ::ffff:a.b.c.d) without pointers, which keeps sorting
// tens of thousands of them cheap.
type span struct {
	lo, hi u128
	v4     bool
}

type u128 struct{ hi, lo uint64 }

func fromAddr(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (u u128) addr(v4 bool) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	a := netip.AddrFrom16(b)
	if v4 {
		return a.Unmap()
	}
	return a
}

func (u u128) cmp(v u128) int {
	switch {
	case u.hi < v.hi:
		return -1
	case u.hi > v.hi:
		return 1
	case u.lo < v.lo:
		return -1
	case u.lo > v.lo:
		return 1
	}
	return 0
}

func (u u128) next() u128 {
	lo, carry := bits.Add64(u.lo, 1, 0)
	return u128{u.hi + carry, lo}
}

func (u u128) prev() u128 {
	lo, borrow := bits.Sub64(u.lo, 1, 0)
	return u128{u.hi - borrow, lo}
}

// familyMax is the highest address of a family.
func familyMax(v4 bool) u128 {
	if v4 {
		return u128{0, 0x0000_ffff_ffff_ffff}
	}
	return u128{^uint64(0), ^uint64(0)}
}

func prefixSpan(p netip.Prefix) span {
	p = p.Masked()
	v4 := p.Addr().Is4()
	bits := p.Bits()
	if v4 {
		bits += 96
	}
	lo := fromAddr(p.Addr())
	return span{lo, u128{lo.hi | hostMask(bits), lo.lo | hostMask(bits-64)}, v4}
}

// hostMask has the low 64-n bits set (n clamped to 0..64).
func hostMask(n int) uint64 {
	switch {
	case n <= 0:
		return ^uint64(0)
	case n >= 64:
		return 0
	}
	return ^uint64(0) >> n
}

// peerSpans are the addresses of a peer of one family (is6): its prefix less
// its excepts.
func peerSpans(p Peer, is6 bool) []span {
	if p.Prefix.Addr().Is6() != is6 {
		return nil
	}
	var cut []span
	for _, e := range p.Except {
		if e.Addr().Is6() == is6 {
			cut = append(cut, prefixSpan(e))
		}
	}
	return subtract([]span{prefixSpan(p.Prefix)}, mergeSpans(cut))
}

// mergeSpans sorts spans of one family and joins the ones that overlap or
// touch.
func mergeSpans(s []span) []span {
	if len(s) < 2 {
		return s
	}
	slices.SortFunc(s, func(a, b span) int {
		if c := a.lo.cmp(b.lo); c != 0 {
			return c
		}
		return a.hi.cmp(b.hi)
	})
	out := s[:1]
	max := familyMax(s[0].v4)
	for _, x := range s[1:] {
		last := &out[len(out)-1]
		if last.hi != max && x.lo.cmp(last.hi.next()) > 0 {
			out = append(out, x)
			continue
		}
		if x.hi.cmp(last.hi) > 0 {
			last.hi = x.hi
		}
	}
	return out
}

// subtract removes the sorted, disjoint spans cut from the sorted, disjoint
// spans s.
func subtract(s, cut []span) []span {
	if len(cut) == 0 {
		return s
	}
	var out []span
	for _, x := range s {
		lo, done := x.lo, false
		for _, c := range cut {
			if c.hi.cmp(lo) < 0 || c.lo.cmp(x.hi) > 0 {
				continue
			}
			if c.lo.cmp(lo) > 0 {
				out = append(out, span{lo, c.lo.prev(), x.v4})
			}
			if c.hi.cmp(x.hi) >= 0 {
				done = true
				break
			}
			lo = c.hi.next()
		}
		if !done {
			out = append(out, span{lo, x.hi, x.v4})
		}
	}
	return out
}

// contains says whether a span holds an address of its family.
func (s span) contains(a netip.Addr) bool {
	if a.Is4() != s.v4 {
		return false
	}
	u := fromAddr(a)
	return s.lo.cmp(u) <= 0 && u.cmp(s.hi) <= 0
}

// isFull says whether the spans cover every address of their family.
func isFull(s []span, is6 bool) bool {
	all := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if is6 {
		all = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return len(s) == 1 && s[0] == prefixSpan(all)
}

func (s span) String() string { return string(s.appendTo(nil)) }

// appendTo writes a span as nftables reads it: an address, a prefix when the
// span is one, or a range.
func (s span) appendTo(b []byte) []byte {
	lo := s.lo.addr(s.v4)
	b = lo.AppendTo(b)
	if s.lo == s.hi {
		return b
	}
	n := commonBits(s.lo, s.hi)
	if p := prefixSpan(netip.PrefixFrom(lo, n-96*b2i(s.v4))); p.lo == s.lo && p.hi == s.hi {
		return strconv.AppendInt(append(b, '/'), int64(n-96*b2i(s.v4)), 10)
	}
	return s.hi.addr(s.v4).AppendTo(append(b, '-'))
}

func commonBits(a, b u128) int {
	if a.hi != b.hi {
		return bits.LeadingZeros64(a.hi ^ b.hi)
	}
	return 64 + bits.LeadingZeros64(a.lo^b.lo)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
