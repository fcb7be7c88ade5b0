package iid

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

// FuzzDerive checks Derive's promises for any range, input and try: the
// address lies inside the range and is never its all-zero host part, the
// deterministic algorithms return the same address when asked twice, and the
// hash and ipv4 counters only ever change the counter nibble.
func FuzzDerive(f *testing.F) {
	f.Add("hash", []byte{0x20, 0x01, 0x0d, 0xb8}, uint8(64), "default", "web-0", []byte{10, 42, 1, 5}, 0, []byte{1, 2, 3})
	f.Add("ipv4", []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x42}, uint8(92), "ns", "p", []byte{0, 0, 0, 0}, 0, []byte{})
	f.Add("random", []byte{0xfd}, uint8(120), "", "", []byte{}, 5, bytes.Repeat([]byte{0}, 40))
	f.Add("hash", []byte{0x20, 0x01}, uint8(120), "default", "pod-19", []byte{}, 0, []byte{})
	f.Add("random", []byte{0x20}, uint8(48), "", "", []byte{}, 15, bytes.Repeat([]byte{0xff}, 16))
	f.Add("ipv4", []byte{0x20}, uint8(96), "", "", []byte{1, 2, 3, 4}, 16, []byte{})
	f.Fuzz(func(t *testing.T, algo string, prefix []byte, bits uint8, ns, name string, v4 []byte, try int, rnd []byte) {
		var a16 [16]byte
		copy(a16[:], prefix)
		r, err := netip.AddrFrom16(a16).Prefix(int(bits % 129))
		if err != nil {
			t.Skip()
		}
		in := Input{Namespace: ns, Name: name}
		if len(v4) >= 4 {
			in.IPv4 = netip.AddrFrom4([4]byte(v4[:4]))
		}
		got, err := Derive(Algo(algo), r, in, try, bytes.NewReader(rnd))
		if err != nil {
			return
		}
		if !r.Contains(got) {
			t.Fatalf("Derive(%s, %s, try %d) = %s, outside the range", algo, r, try, got)
		}
		if got == r.Masked().Addr() {
			t.Fatalf("Derive(%s, %s, try %d) = %s, the subnet-router anycast address", algo, r, try, got)
		}
		if Algo(algo) == Random {
			return
		}
		again, err := Derive(Algo(algo), r, in, try, bytes.NewReader(rnd))
		if err != nil || again != got {
			t.Fatalf("Derive(%s, %s, try %d) not deterministic: %s then %s, %v", algo, r, try, got, again, err)
		}
		// Another try differs from this one exactly in the counter nibble.
		other := (try + 1) % MaxTries
		alt, err := Derive(Algo(algo), r, in, other, nil)
		if errors.Is(err, ErrSubnetRouter) {
			return
		}
		if err != nil {
			t.Fatalf("Derive(%s, %s, try %d) failed after try %d worked: %v", algo, r, other, try, err)
		}
		shift := 0
		if Algo(algo) == IPv4 {
			shift = 32
		}
		x, y := fromAddr(got), fromAddr(alt)
		diff := u128{x.hi ^ y.hi, x.lo ^ y.lo}
		if diff.hi != 0 || diff.lo&^(0xf<<shift) != 0 || diff.lo == 0 {
			t.Fatalf("try %d gave %s, try %d gave %s: they must differ in the counter nibble only", try, got, other, alt)
		}
	})
}
