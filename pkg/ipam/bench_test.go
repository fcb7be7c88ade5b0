package ipam

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/fritzlab/flock/pkg/iid"
)

// BenchmarkAllocate measures a dual-stack allocation plus its release in a
// /16 that is already half full, per IID algorithm, with crypto/rand: the
// steady state of a busy node. The bitmap keeps the IPv4 scan from growing
// with the number of addresses in use.
func BenchmarkAllocate(b *testing.B) {
	for _, algo := range []iid.Algo{iid.Random, iid.Hash, iid.IPv4} {
		b.Run(string(algo), func(b *testing.B) {
			a := New(pfx("2001:db8::/64"), pfx("10.1.0.0/16"), nil)
			for i := range 1 << 15 {
				if _, err := a.Allocate(Request{Families: dual, Name: fmt.Sprint("fill-", i)}); err != nil {
					b.Fatal(err)
				}
			}
			req := Request{Families: dual, Algo: algo, Namespace: "ns", Name: "pod"}
			for b.Loop() {
				al, err := a.Allocate(req)
				if err != nil {
					b.Fatal(err)
				}
				a.Release(al.IPv4, al.IPv6)
			}
		})
	}
}

// BenchmarkAllocate100 is the brief's yardstick: 100 fresh dual-stack
// allocations in an empty /16 (microseconds, not milliseconds).
func BenchmarkAllocate100(b *testing.B) {
	for b.Loop() {
		a := New(pfx("2001:db8::/64"), pfx("10.1.0.0/16"), nil)
		for range 100 {
			if _, err := a.Allocate(Request{Families: dual}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkAllocateNearlyFull is the IPv4 worst case: one free address left
// in a /16, just behind the cursor, so the scan wraps across the whole pool.
func BenchmarkAllocateNearlyFull(b *testing.B) {
	a := New(netip.Prefix{}, pfx("10.1.0.0/16"), nil)
	for {
		if _, err := a.Allocate(Request{Families: only4}); err != nil {
			break
		}
	}
	a.Release(addr("10.1.0.2"))
	for b.Loop() {
		al, err := a.Allocate(Request{Families: only4})
		if err != nil {
			b.Fatal(err)
		}
		a.Release(al.IPv4)
	}
}
