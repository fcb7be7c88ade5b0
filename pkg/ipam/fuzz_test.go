package ipam

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/fritzlab/flock/pkg/iid"
	"github.com/fritzlab/flock/pkg/model"
)

// FuzzAllocateRelease drives small pools (so exhaustion, collisions and the
// ipv4 algorithm's failures happen often) through a sequence of operations
// read from the fuzz input, one byte each, and checks after every step that
// no address is held twice, every address lies in its pool and requested
// ranges and is none of the reserved ones, and failed requests leave
// nothing behind.
func FuzzAllocateRelease(f *testing.F) {
	f.Add([]byte{0, 4, 8, 12, 16, 1, 5, 9, 3, 7, 11, 2, 6, 10})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3})
	f.Add([]byte{0xff, 0xfe, 0xfd, 0xfc, 0x80, 0x40, 0x20, 0x10})
	f.Add([]byte("allocate, release, allocate again"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		pool6, pool4 := pfx("2001:db8::/120"), pfx("10.0.0.16/28")
		sub6, sub4 := pfx("2001:db8::80/121"), pfx("10.0.0.24/29")
		a := New(pool6, pool4, seeded())
		held := map[netip.Addr]string{}
		var order []netip.Addr
		for i, op := range ops {
			arg := int(op >> 2)
			if op%4 == 3 {
				if len(order) == 0 {
					continue
				}
				k := arg % len(order)
				ad := order[k]
				order = append(order[:k], order[k+1:]...)
				delete(held, ad)
				a.Release(ad)
				continue
			}
			req := Request{
				Owner: fmt.Sprint("op", i), Namespace: "ns", Name: fmt.Sprint("pod-", arg%8),
				Families: []model.Families{{IPv6: true, IPv4: true}, {IPv4: true}, {IPv6: true}}[op%4],
				Algo:     []iid.Algo{iid.Random, iid.Hash, iid.IPv4, ""}[arg%4],
			}
			if arg&16 != 0 {
				req.Ranges6, req.Ranges4 = []netip.Prefix{sub6, pool6}, []netip.Prefix{sub4}
			}
			before := a.Used()
			al, err := a.Allocate(req)
			if err != nil {
				if a.Used() != before {
					t.Fatalf("op %d: failed request changed Used() from %d to %d: %v", i, before, a.Used(), err)
				}
				continue
			}
			check := func(ad netip.Addr, want bool, pool netip.Prefix, ranges []netip.Prefix) {
				if ad.IsValid() != want {
					t.Fatalf("op %d: got %v for %+v", i, al, req.Families)
				}
				if !want {
					return
				}
				if o, dup := held[ad]; dup {
					t.Fatalf("op %d: %s handed out again, already held by %s", i, ad, o)
				}
				if !inAny(ad, orPool(ranges, pool)) || !pool.Contains(ad) || ad == pool.Addr() {
					t.Fatalf("op %d: %s outside %v of pool %s, or the pool's network", i, ad, ranges, pool)
				}
				held[ad] = req.Owner
				order = append(order, ad)
			}
			check(al.IPv4, req.Families.IPv4, pool4, req.Ranges4)
			check(al.IPv6, req.Families.IPv6, pool6, req.Ranges6)
			if al.IPv4 == Gateway(pool4) || al.IPv4 == addr("10.0.0.31") {
				t.Fatalf("op %d: allocated the gateway or broadcast %s", i, al.IPv4)
			}
			if req.Algo == iid.IPv4 && al.IPv6.IsValid() && al.IPv4.IsValid() {
				if b6, b4 := al.IPv6.As16(), al.IPv4.As4(); [4]byte(b6[12:]) != b4 {
					t.Fatalf("op %d: ipv4 algo gave %s for %s", i, al.IPv6, al.IPv4)
				}
			}
		}
		if a.Used() != len(held) {
			t.Fatalf("Used() = %d, test holds %d", a.Used(), len(held))
		}
		for ad, owner := range held {
			if o, ok := a.InUse(ad); !ok || o != owner {
				t.Fatalf("InUse(%s) = %q, %v; want %q", ad, o, ok, owner)
			}
		}
	})
}

func inAny(ad netip.Addr, ranges []netip.Prefix) bool {
	for _, r := range ranges {
		if r.Contains(ad) {
			return true
		}
	}
	return false
}
