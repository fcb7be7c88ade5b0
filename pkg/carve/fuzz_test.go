package carve

import (
	"net/netip"
	"testing"
)

// FuzzAllocator checks the allocator against brute force on small ranges:
// every block it hands out is a block of the range that overlaps nothing
// taken nor handed out before, it stops exactly when no such block is left,
// and always gives the lowest.
func FuzzAllocator(f *testing.F) {
	f.Add([]byte{10, 42, 0, 0}, uint8(20), uint8(4), []byte{10, 42, 1, 0, 24, 10, 42, 0, 0, 26})
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8}, uint8(56), uint8(8), []byte{0x20, 0x01, 0x0d, 0xb8, 60})
	f.Fuzz(func(t *testing.T, base []byte, bits, blockBits uint8, takenRaw []byte) {
		six := len(base) > 4
		addr := func(b []byte) netip.Addr {
			var a16 [16]byte
			if six {
				copy(a16[:], b)
				return netip.AddrFrom16(a16)
			}
			var a4 [4]byte
			copy(a4[:], b)
			return netip.AddrFrom4(a4)
		}
		alen := 32
		step := 5
		if six {
			alen, step = 128, 17
		}
		r := Range{Prefix: netip.PrefixFrom(addr(base), int(bits)%(alen+1)).Masked()}
		r.Bits = r.Prefix.Bits() + int(blockBits)%9
		if r.Validate() != nil {
			return
		}
		var taken []netip.Prefix
		for i := 0; i+step <= len(takenRaw) && len(taken) < 16; i += step {
			taken = append(taken, netip.PrefixFrom(addr(takenRaw[i:i+step-1]), int(takenRaw[i+step-1])%(alen+1)))
		}
		a := NewAllocator(r, taken)
		used := a.Used()
		free := func(i int) bool {
			b := r.Block(i)
			for _, t := range taken {
				if t.Overlaps(b) {
					return false
				}
			}
			return true
		}
		want := 0
		for i := range r.Total() {
			if !free(i) {
				continue
			}
			want++
			got, ok := a.Next()
			if !ok || got != r.Block(i) {
				t.Fatalf("%v taken %v: next = %s %v, want %s", r, taken, got, ok, r.Block(i))
			}
		}
		if got, ok := a.Next(); ok {
			t.Fatalf("%v taken %v: %s after the last free block", r, taken, got)
		}
		if used != r.Total()-want || a.Free() != 0 {
			t.Fatalf("%v taken %v: used %d at the start, want %d; free %d at the end", r, taken, used, r.Total()-want, a.Free())
		}
	})
}
