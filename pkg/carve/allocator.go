package carve

import "net/netip"

// Allocator hands out the free blocks of a range, lowest first. It is not
// safe for concurrent use.
type Allocator struct {
	r     Range
	spans []span // used blocks, merged and sorted
}

// NewAllocator starts from the prefixes already taken (of any family and
// size; those outside r do not count). r must be valid.
func NewAllocator(r Range, taken []netip.Prefix) *Allocator {
	return &Allocator{r: r, spans: r.spans(taken)}
}

// Next takes the lowest free block; ok is false when r is exhausted.
func (a *Allocator) Next() (block netip.Prefix, ok bool) {
	i := 0
	if len(a.spans) > 0 && a.spans[0].lo == 0 {
		i = a.spans[0].hi + 1
	}
	if i >= a.r.Total() {
		return netip.Prefix{}, false
	}
	a.take(i)
	return a.r.Block(i), true
}

// take marks block i used (i is free and just after the first span, or 0).
func (a *Allocator) take(i int) {
	switch {
	case len(a.spans) > 0 && a.spans[0].lo == 0:
		a.spans[0].hi = i
	default:
		a.spans = append([]span{{i, i}}, a.spans...)
	}
	if len(a.spans) > 1 && a.spans[1].lo == a.spans[0].hi+1 {
		a.spans[0].hi = a.spans[1].hi
		a.spans = append(a.spans[:1], a.spans[2:]...)
	}
}

// Used is how many blocks are taken.
func (a *Allocator) Used() int {
	n := 0
	for _, s := range a.spans {
		n += s.hi - s.lo + 1
	}
	return n
}

// Free is how many blocks are left.
func (a *Allocator) Free() int { return a.r.Total() - a.Used() }
