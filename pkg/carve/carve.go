// Package carve cuts a cluster range into equal per-node blocks and finds
// the lowest free one. It is pure: the taken prefixes are whatever the
// caller found (the NodeConfigs' pools), so the same input always gives the
// same block, whichever process asks.
package carve

import (
	"fmt"
	"net/netip"
	"slices"
)

// MaxBlockBits bounds Bits minus the range's prefix length: at most 2^24
// blocks, so indices fit an int and counts stay exact.
const MaxBlockBits = 24

// Range is a cluster range carved into blocks of prefix length Bits.
type Range struct {
	Prefix netip.Prefix
	Bits   int
}

// Validate says whether r can be carved. Errors name the values.
func (r Range) Validate() error {
	switch {
	case !r.Prefix.IsValid():
		return fmt.Errorf("range %s: not a valid prefix", r.Prefix)
	case r.Prefix.Masked() != r.Prefix:
		return fmt.Errorf("range %s: has host bits set (give %s)", r.Prefix, r.Prefix.Masked())
	case r.Prefix.Addr().Is4In6() || r.Prefix.Addr().Zone() != "":
		return fmt.Errorf("range %s: not a plain IPv4 or IPv6 prefix", r.Prefix)
	case r.Bits < r.Prefix.Bits() || r.Bits > r.Prefix.Addr().BitLen():
		return fmt.Errorf("range %s: block size /%d must be /%d to /%d", r.Prefix, r.Bits, r.Prefix.Bits(), r.Prefix.Addr().BitLen())
	case r.Bits-r.Prefix.Bits() > MaxBlockBits:
		return fmt.Errorf("range %s: block size /%d makes 2^%d blocks, at most 2^%d", r.Prefix, r.Bits, r.Bits-r.Prefix.Bits(), MaxBlockBits)
	}
	return nil
}

func (r Range) String() string { return fmt.Sprintf("%s/%d blocks", r.Prefix, r.Bits) }

// Total is the number of blocks (r must be valid).
func (r Range) Total() int { return 1 << (r.Bits - r.Prefix.Bits()) }

// Block is the i-th block, 0 <= i < Total.
func (r Range) Block(i int) netip.Prefix {
	b := r.Prefix.Addr().As16()
	off := 128 - r.Prefix.Addr().BitLen() // bit offset of the address in As16
	for k := r.Bits - 1; k >= r.Prefix.Bits(); k-- {
		if i&1 == 1 {
			pos := off + k
			b[pos/8] |= 0x80 >> (pos % 8)
		}
		i >>= 1
	}
	a := netip.AddrFrom16(b)
	if r.Prefix.Addr().Is4() {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, r.Bits)
}

// index is the block of r holding a, which must be inside r.
func (r Range) index(a netip.Addr) int {
	b := a.As16()
	off := 128 - a.BitLen()
	i := 0
	for k := r.Prefix.Bits(); k < r.Bits; k++ {
		pos := off + k
		i = i<<1 | int(b[pos/8]>>(7-pos%8)&1)
	}
	return i
}

// IsBlock says whether p is exactly one block of r.
func (r Range) IsBlock(p netip.Prefix) bool {
	return p.IsValid() && p.Bits() == r.Bits && p.Masked() == p && r.Prefix.Contains(p.Addr())
}

// span is a run of block indices [lo, hi].
type span struct{ lo, hi int }

// spans returns the blocks each taken prefix touches, merged and sorted.
// A taken prefix may be of any size: one smaller than a block spoils its
// whole block; one covering r takes every block.
func (r Range) spans(taken []netip.Prefix) []span {
	var s []span
	for _, t := range taken {
		if !t.IsValid() || t.Addr().Is4() != r.Prefix.Addr().Is4() || !t.Overlaps(r.Prefix) {
			continue
		}
		t = t.Masked()
		if t.Bits() <= r.Prefix.Bits() {
			return []span{{0, r.Total() - 1}}
		}
		s = append(s, span{r.index(t.Addr()), r.index(last(t))})
	}
	slices.SortFunc(s, func(a, b span) int { return a.lo - b.lo })
	var out []span
	for _, x := range s {
		if n := len(out); n > 0 && x.lo <= out[n-1].hi+1 {
			out[n-1].hi = max(out[n-1].hi, x.hi)
			continue
		}
		out = append(out, x)
	}
	return out
}

// last is the highest address of p (p masked).
func last(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	off := 128 - p.Addr().BitLen()
	for pos := off + p.Bits(); pos < 128; pos++ {
		b[pos/8] |= 0x80 >> (pos % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

// Conflicts says, for each prefix of a list ordered by precedence, the index
// of the first earlier prefix it overlaps, or -1: two pools must never hand
// out overlapping blocks, so the later one of an overlapping pair is not
// used. Invalid prefixes conflict with nothing.
func Conflicts(prefixes []netip.Prefix) []int {
	out := make([]int, len(prefixes))
	for i, p := range prefixes {
		out[i] = -1
		for j := range i {
			if p.IsValid() && prefixes[j].IsValid() && p.Overlaps(prefixes[j]) {
				out[i] = j
				break
			}
		}
	}
	return out
}
