package ipam

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
)

// Gateway is the IPv4 gateway of a pool: its first usable address. Pods use
// it as their on-link default gateway, so it is never handed out. It is the
// zero Addr for anything but a valid IPv4 prefix.
func Gateway(pool4 netip.Prefix) netip.Addr {
	if !pool4.IsValid() || !pool4.Addr().Is4() {
		return netip.Addr{}
	}
	return pool4.Masked().Addr().Next()
}

// allocate4 scans each range in order for a free address, skipping the
// pool's network, gateway and broadcast addresses (a /30 pool has one usable
// address). Those three are the pool's, not a range's: a range narrower than
// the pool is only a part of the pool's one link-less subnet, so its own
// first and last addresses are ordinary /32s.
func (a *Allocator) allocate4(ranges []netip.Prefix) (netip.Addr, error) {
	if !a.pool4.IsValid() {
		return netip.Addr{}, errors.New("the node has no IPv4 pool")
	}
	var errs rangeErrors
	for _, r := range orPool(ranges, a.pool4) {
		r, ok := clip(a.pool4, r)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: outside pool %s", r, a.pool4))
			continue
		}
		lo, _ := a.offset4(r.Addr())
		hi := lo + size(r)
		// Next fit: from the cursor to the end of the range, then wrap.
		start := lo
		if a.cursor4 > lo && a.cursor4 < hi {
			start = a.cursor4
		}
		off, ok := a.free4(start, hi)
		if !ok {
			off, ok = a.free4(lo, start)
		}
		if ok {
			a.cursor4 = off + 1
			return a.addr4(off), nil
		}
		errs = append(errs, fmt.Errorf("%s: %w: every usable address is in use", r, ErrExhausted))
	}
	return netip.Addr{}, errs
}

// free4 returns the first offset in [from, to) that is neither in use nor
// one of the pool's network, gateway and broadcast addresses.
func (a *Allocator) free4(from, to uint64) (uint64, bool) {
	last := size(a.pool4) - 1
	for from < to {
		off, ok := a.v4.nextClear(from, to)
		if !ok {
			return 0, false
		}
		if off != 0 && off != 1 && off != last {
			return off, true
		}
		from = off + 1
	}
	return 0, false
}

// offset4 is addr's offset from pool4's network address.
func (a *Allocator) offset4(addr netip.Addr) (uint64, bool) {
	if !a.pool4.IsValid() || !a.pool4.Contains(addr) {
		return 0, false
	}
	return uint64(u32(addr) - u32(a.pool4.Addr())), true
}

func (a *Allocator) addr4(off uint64) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u32(a.pool4.Addr())+uint32(off))
	return netip.AddrFrom4(b)
}

func u32(addr netip.Addr) uint32 {
	b := addr.As4()
	return binary.BigEndian.Uint32(b[:])
}

// size is the number of addresses in an IPv4 prefix.
func size(p netip.Prefix) uint64 { return 1 << (32 - p.Bits()) }

// chunkBits is how many addresses one bitmap chunk covers. Chunks are
// allocated on first use, so a large pool (a /8 is 16M addresses) costs
// memory only where pods are: 8 KiB per 65536 addresses.
const chunkBits = 1 << 16

// bitmap is a set of offsets, one bit each.
type bitmap struct {
	chunks map[uint64]*[chunkBits / 64]uint64
}

func (b *bitmap) set(i uint64) {
	if b.chunks == nil {
		b.chunks = map[uint64]*[chunkBits / 64]uint64{}
	}
	c := b.chunks[i/chunkBits]
	if c == nil {
		c = new([chunkBits / 64]uint64)
		b.chunks[i/chunkBits] = c
	}
	c[i%chunkBits/64] |= 1 << (i % 64)
}

func (b *bitmap) clear(i uint64) {
	if c := b.chunks[i/chunkBits]; c != nil {
		c[i%chunkBits/64] &^= 1 << (i % 64)
	}
}

// nextClear returns the first offset in [from, to) whose bit is clear,
// scanning a word (64 addresses) at a time.
func (b *bitmap) nextClear(from, to uint64) (uint64, bool) {
	for i := from; i < to; {
		c := b.chunks[i/chunkBits]
		if c == nil {
			return i, true
		}
		// Within the chunk, test whole words; the bits below i in its first
		// word count as taken.
		end := min(to, (i/chunkBits+1)*chunkBits)
		for w := i % chunkBits / 64; i < end; w++ {
			word := c[w] | (1<<(i%64) - 1)
			if word != ^uint64(0) {
				if j := i&^63 + uint64(bits.TrailingZeros64(^word)); j < to {
					return j, true
				}
				return 0, false
			}
			i = i&^63 + 64
		}
	}
	return 0, false
}

// Capacity is how many addresses of pool pods can get: an IPv4 pool
// without its network, gateway and broadcast addresses; an IPv6 pool
// without its subnet-router anycast address. A float: a /64 holds 2^64.
func Capacity(pool netip.Prefix) float64 {
	if !pool.IsValid() {
		return 0
	}
	n := math.Ldexp(1, pool.Addr().BitLen()-pool.Bits())
	if pool.Addr().Is4() {
		return max(n-3, 0)
	}
	return n - 1
}
