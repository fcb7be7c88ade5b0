package ipam

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/fritzlab/flock/pkg/iid"
)

func TestReserve(t *testing.T) {
	a := New(pfx("2001:db8::/120"), pfx("10.0.0.0/29"), nil)
	// Seeded from disk: two of the five usable IPv4 addresses, the hash
	// address of pod-8, and an address of a pool the node no longer has.
	for owner, addrs := range map[string][]netip.Addr{
		"c1/eth0": {addr("10.0.0.3"), addr("2001:db8::20")},
		"c2/eth0": {addr("10.0.0.5")},
		"c3/eth0": {addr("10.9.9.9"), addr("2001:db9::1")},
	} {
		if err := a.Reserve(owner, addrs...); err != nil {
			t.Fatal(err)
		}
	}
	if a.Used() != 5 {
		t.Fatalf("Used() = %d, want 5", a.Used())
	}
	// Idempotent for the same owner, also for an IPv4-mapped spelling.
	if err := a.Reserve("c1/eth0", addr("10.0.0.3"), addr("::ffff:10.0.0.3")); err != nil {
		t.Errorf("re-reserving for the same owner: %v", err)
	}
	// Another owner: refused, and nothing of the call is reserved.
	err := a.Reserve("c4/eth0", addr("10.0.0.6"), addr("10.0.0.5"))
	if want := "reserve 10.0.0.5 for c4/eth0: already in use by c2/eth0"; err == nil || err.Error() != want {
		t.Errorf("conflicting Reserve error = %v, want %q", err, want)
	}
	if _, ok := a.InUse(addr("10.0.0.6")); ok {
		t.Errorf("10.0.0.6 reserved by a failed Reserve")
	}
	if err := a.Reserve("c4/eth0", netip.Addr{}); err == nil {
		t.Errorf("Reserve of the zero Addr succeeded")
	}

	// Allocation goes around every reserved address.
	got, _ := allocate4(t, a, Request{})
	want := []netip.Addr{addr("10.0.0.2"), addr("10.0.0.4"), addr("10.0.0.6")}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("allocated %v, want %v", got, want)
		}
	}
	al, err := a.Allocate(Request{Families: only6, Algo: iid.Hash, Namespace: "default", Name: "pod-8"})
	if err != nil || al.IPv6 != addr("2001:db8::21") {
		t.Errorf("hash allocation = %s, %v; want 2001:db8::21 (::20 is reserved)", al.IPv6, err)
	}
	if owner, ok := a.InUse(addr("10.9.9.9")); !ok || owner != "c3/eth0" {
		t.Errorf("InUse(10.9.9.9) = %q, %v; want c3/eth0", owner, ok)
	}
	// Released, a reserved address is free again.
	a.Release(addr("10.0.0.5"))
	if al, err := a.Allocate(Request{Families: only4}); err != nil || al.IPv4 != addr("10.0.0.5") {
		t.Errorf("after release got %s, %v; want 10.0.0.5", al.IPv4, err)
	}
}

// Reserving the pool's gateway (a store written by a buggy version, say)
// must not make it allocatable after Release.
func TestReserveReleaseGateway(t *testing.T) {
	a := New(netip.Prefix{}, pfx("10.0.0.0/30"), nil)
	gw := Gateway(pfx("10.0.0.0/30"))
	if err := a.Reserve("x", gw); err != nil {
		t.Fatal(err)
	}
	a.Release(gw)
	got, _ := allocate4(t, a, Request{})
	if len(got) != 1 || got[0] != addr("10.0.0.2") {
		t.Errorf("allocated %v, want only 10.0.0.2", got)
	}
}

// Many goroutines allocating at once never get the same address; run with
// -race to also check the locking.
func TestConcurrentAllocate(t *testing.T) {
	const goroutines, each = 64, 50
	a := New(pfx("2001:db8::/64"), pfx("10.1.0.0/16"), nil)
	algos := []iid.Algo{iid.Random, iid.Hash, iid.IPv4}
	results := make([][]Allocation, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				req := Request{
					Owner: fmt.Sprintf("c%d-%d/eth0", g, i), Namespace: "ns", Name: fmt.Sprintf("pod-%d-%d", g, i),
					Families: dual, Algo: algos[(g+i)%len(algos)],
				}
				al, err := a.Allocate(req)
				if err != nil {
					t.Error(err)
					return
				}
				results[g] = append(results[g], al)
				// Exercise Release and InUse concurrently as well.
				if i%10 == 9 {
					a.Release(al.IPv4, al.IPv6)
					results[g] = results[g][:len(results[g])-1]
				}
				a.InUse(al.IPv4)
			}
		})
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for _, rs := range results {
		for _, al := range rs {
			for _, ad := range []netip.Addr{al.IPv4, al.IPv6} {
				if seen[ad] {
					t.Fatalf("%s handed out twice", ad)
				}
				seen[ad] = true
			}
		}
	}
	if want := goroutines * (each - each/10) * 2; len(seen) != want || a.Used() != want {
		t.Errorf("%d distinct addresses held, Used() = %d, want %d", len(seen), a.Used(), want)
	}
}
