package ipam

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fritzlab/flock/pkg/iid"
	"github.com/fritzlab/flock/pkg/model"
)

var (
	pfx     = netip.MustParsePrefix
	addr    = netip.MustParseAddr
	addrCmp = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})
	dual    = model.Families{IPv6: true, IPv4: true}
	only4   = model.Families{IPv4: true}
	only6   = model.Families{IPv6: true}
)

// seeded is a reproducible random source for the random IID algorithm.
func seeded() *rand.ChaCha8 { return rand.NewChaCha8([32]byte{'f', 'l', 'o', 'c', 'k'}) }

func TestAllocateDualStack(t *testing.T) {
	a := New(pfx("2001:db8:42:1::/64"), pfx("10.42.1.0/24"), seeded())
	got, err := a.Allocate(Request{Owner: "c1/eth0", Namespace: "default", Name: "web-0", Families: dual, Algo: iid.IPv4})
	if err != nil {
		t.Fatal(err)
	}
	want := Allocation{IPv6: addr("2001:db8:42:1::a2a:102"), IPv4: addr("10.42.1.2"), Gateway4: addr("10.42.1.1")}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("Allocate (-want +got):\n%s", diff)
	}
	for _, ad := range []netip.Addr{got.IPv6, got.IPv4} {
		if owner, ok := a.InUse(ad); !ok || owner != "c1/eth0" {
			t.Errorf("InUse(%s) = %q, %v; want c1/eth0", ad, owner, ok)
		}
	}
	if a.Used() != 2 {
		t.Errorf("Used() = %d, want 2", a.Used())
	}
}

func TestAllocateSingleFamily(t *testing.T) {
	a := New(pfx("2001:db8::/64"), pfx("10.0.0.0/24"), seeded())
	got, err := a.Allocate(Request{Families: only6, Algo: iid.Hash, Namespace: "default", Name: "web-0"})
	if err != nil {
		t.Fatal(err)
	}
	want := Allocation{IPv6: addr("2001:db8::182f:9c81:e249:2a90")}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("IPv6 only (-want +got):\n%s", diff)
	}
	got, err = a.Allocate(Request{Families: only4})
	if err != nil {
		t.Fatal(err)
	}
	want = Allocation{IPv4: addr("10.0.0.2"), Gateway4: addr("10.0.0.1")}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("IPv4 only (-want +got):\n%s", diff)
	}
}

// allocate4 allocates IPv4 addresses until the allocator refuses, and
// returns what it got and the refusal.
func allocate4(t *testing.T, a *Allocator, req Request) ([]netip.Addr, error) {
	t.Helper()
	req.Families = only4
	var got []netip.Addr
	for range 1 << 17 {
		al, err := a.Allocate(req)
		if err != nil {
			return got, err
		}
		got = append(got, al.IPv4)
	}
	t.Fatal("allocator never ran out")
	return nil, nil
}

func TestAllocateIPv4Exhaustion(t *testing.T) {
	tests := []struct {
		pool   string
		ranges []netip.Prefix
		want   []string
		err    string
	}{
		{pool: "10.0.0.0/30", want: []string{"10.0.0.2"},
			err: "allocate IPv4 for /: 10.0.0.0/30: range exhausted: every usable address is in use"},
		{pool: "10.0.0.8/29", want: []string{"10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14"}},
		// Inside the pool, a range's own first and last addresses are fine;
		// the pool's network, gateway and broadcast never are.
		{pool: "10.0.0.0/24", ranges: []netip.Prefix{pfx("10.0.0.0/30"), pfx("10.0.0.252/30")},
			want: []string{"10.0.0.2", "10.0.0.3", "10.0.0.252", "10.0.0.253", "10.0.0.254"},
			err:  "10.0.0.0/30: range exhausted: every usable address is in use; 10.0.0.252/30: range exhausted"},
		{pool: "10.0.0.0/24", ranges: []netip.Prefix{pfx("10.0.0.7/32"), pfx("10.0.0.64/31")},
			want: []string{"10.0.0.7", "10.0.0.64", "10.0.0.65"}},
		// A range wider than the pool means the pool.
		{pool: "10.0.0.0/30", ranges: []netip.Prefix{pfx("10.0.0.0/8")}, want: []string{"10.0.0.2"}},
		{pool: "10.0.0.0/30", ranges: []netip.Prefix{pfx("10.9.0.0/16"), pfx("2001:db8::/64")},
			err: "10.9.0.0/16: outside pool 10.0.0.0/30; 2001:db8::/64: outside pool 10.0.0.0/30"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.pool, tt.ranges), func(t *testing.T) {
			a := New(netip.Prefix{}, pfx(tt.pool), nil)
			got, err := allocate4(t, a, Request{Ranges4: tt.ranges})
			var want []netip.Addr
			for _, s := range tt.want {
				want = append(want, addr(s))
			}
			if diff := cmp.Diff(want, got, addrCmp); diff != "" {
				t.Errorf("allocated (-want +got):\n%s", diff)
			}
			if tt.err != "" && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %q does not contain %q", err, tt.err)
			}
			if a.Used() != len(want) {
				t.Errorf("Used() = %d after failure, want %d", a.Used(), len(want))
			}
		})
	}
}

func TestAllocateIPv4WholePool(t *testing.T) {
	a := New(netip.Prefix{}, pfx("10.1.0.0/16"), nil)
	got, err := allocate4(t, a, Request{})
	if !errors.Is(err, ErrExhausted) {
		t.Errorf("error %v is not ErrExhausted", err)
	}
	if len(got) != 1<<16-3 {
		t.Errorf("got %d addresses, want %d", len(got), 1<<16-3)
	}
	seen := map[netip.Addr]bool{}
	for _, ad := range got {
		if seen[ad] || ad == addr("10.1.0.0") || ad == addr("10.1.0.1") || ad == addr("10.1.255.255") || !a.pool4.Contains(ad) {
			t.Fatalf("allocated %s: duplicate, reserved or outside the pool", ad)
		}
		seen[ad] = true
	}
}

func TestReleaseAndReuse(t *testing.T) {
	a := New(netip.Prefix{}, pfx("10.0.0.0/29"), nil)
	got, _ := allocate4(t, a, Request{})
	a.Release(got[1], got[3], got[1], addr("192.0.2.1"), netip.Addr{})
	if a.Used() != 3 {
		t.Fatalf("Used() = %d after releasing 2 of 5, want 3", a.Used())
	}
	// The cursor is past the end, so both released addresses come back, in
	// pool order, and then the pool is full again.
	again, err := allocate4(t, a, Request{})
	if diff := cmp.Diff([]netip.Addr{got[1], got[3]}, again, addrCmp); diff != "" {
		t.Errorf("reallocated (-want +got):\n%s", diff)
	}
	if !errors.Is(err, ErrExhausted) {
		t.Errorf("error %v is not ErrExhausted", err)
	}
}

// A released address is not handed out again while never-used ones remain.
func TestNextFit(t *testing.T) {
	a := New(netip.Prefix{}, pfx("10.0.0.0/24"), nil)
	first, _ := a.Allocate(Request{Families: only4})
	a.Release(first.IPv4)
	second, _ := a.Allocate(Request{Families: only4})
	if second.IPv4 == first.IPv4 {
		t.Errorf("released %s was reused at once", first.IPv4)
	}
}

// sha256("default/pod-8") and sha256("default/pod-57") agree in the high
// nibble of byte 15 (0x26, 0x26), the only hash bits a /120 keeps.
func TestHashCollision(t *testing.T) {
	a := New(pfx("2001:db8::/120"), netip.Prefix{}, nil)
	retries := 0
	a.OnRetry(func() { retries++ })
	var got []netip.Addr
	for _, name := range []string{"pod-8", "pod-57", "pod-4", "pod-19"} {
		al, err := a.Allocate(Request{Families: only6, Algo: iid.Hash, Namespace: "default", Name: name})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, al.IPv6)
	}
	// pod-4 (0x27) collides with both; pod-19 (0x0a) would be the
	// subnet-router address on try 0, so it gets counter 1.
	want := []netip.Addr{addr("2001:db8::20"), addr("2001:db8::21"), addr("2001:db8::22"), addr("2001:db8::1")}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("allocated (-want +got):\n%s", diff)
	}
	// pod-57 met pod-8's address, pod-4 both; skipping the subnet-router
	// address is no retry.
	if retries != 3 {
		t.Errorf("%d retries counted, want 3", retries)
	}
}

func TestHashCountersExhausted(t *testing.T) {
	a := New(pfx("2001:db8::/120"), pfx("10.0.0.0/24"), nil)
	for i := range 16 {
		if err := a.Reserve("other", addr(fmt.Sprintf("2001:db8::2%x", i))); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.Allocate(Request{Families: dual, Algo: iid.Hash, Namespace: "default", Name: "pod-8"})
	want := "allocate IPv6 for default/pod-8: 2001:db8::/120: range exhausted: the 16 addresses ip-algo hash yields are all in use"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	if !errors.Is(err, ErrExhausted) {
		t.Errorf("error %v is not ErrExhausted", err)
	}
	// The IPv4 address allocated first was rolled back.
	if a.Used() != 16 {
		t.Errorf("Used() = %d, want the 16 reserved", a.Used())
	}
	if _, ok := a.InUse(addr("10.0.0.2")); ok {
		t.Errorf("10.0.0.2 still in use after rollback")
	}
}

func TestAllocateIPv6Ranges(t *testing.T) {
	a := New(pfx("2001:db8:42:1::/64"), pfx("10.42.1.0/24"), seeded())
	for i := range 50 {
		req := Request{Families: only6, Ranges6: []netip.Prefix{pfx("2001:db8:42:1:abcd::/80")}}
		if i%2 == 1 {
			req.Algo, req.Name = iid.Hash, fmt.Sprint("p", i)
		}
		al, err := a.Allocate(req)
		if err != nil {
			t.Fatal(err)
		}
		if !req.Ranges6[0].Contains(al.IPv6) {
			t.Errorf("%s outside requested range %s", al.IPv6, req.Ranges6[0])
		}
	}
}

// A range the algorithm cannot work in is skipped in favour of the next.
func TestAllocateIPv6FallsThroughRanges(t *testing.T) {
	a := New(pfx("2001:db8::/64"), pfx("10.0.0.0/24"), nil)
	req := Request{Families: dual, Algo: iid.IPv4, Ranges6: []netip.Prefix{pfx("2001:db8::/96"), pfx("2001:db8::/64")}}
	al, err := a.Allocate(req)
	if err != nil {
		t.Fatal(err)
	}
	if want := addr("2001:db8::a00:2"); al.IPv6 != want {
		t.Errorf("IPv6 = %s, want %s", al.IPv6, want)
	}
	req.Ranges6 = req.Ranges6[:1]
	_, err = a.Allocate(req)
	if want := "2001:db8::/96: iid ipv4 in 2001:db8::/96: prefix longer than /92"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %v, want it to contain %q", err, want)
	}
	if errors.Is(err, ErrExhausted) {
		t.Errorf("a misconfigured range is not exhaustion: %v", err)
	}
	if a.Used() != 2 {
		t.Errorf("Used() = %d, want 2 (failed request rolled back)", a.Used())
	}
}

func TestAllocateErrors(t *testing.T) {
	tests := []struct {
		name         string
		pool6, pool4 netip.Prefix
		req          Request
		want         string
	}{
		{"no family", pfx("2001:db8::/64"), pfx("10.0.0.0/24"), Request{Namespace: "a", Name: "b"}, "allocate for a/b: no address family requested"},
		{"no v4 pool", pfx("2001:db8::/64"), netip.Prefix{}, Request{Families: dual, Namespace: "a", Name: "b"}, "allocate IPv4 for a/b: the node has no IPv4 pool"},
		{"no v6 pool", netip.Prefix{}, pfx("10.0.0.0/24"), Request{Families: dual, Namespace: "a", Name: "b"}, "allocate IPv6 for a/b: the node has no IPv6 pool"},
		{"v6 range outside", pfx("2001:db8::/64"), netip.Prefix{}, Request{Families: only6, Ranges6: []netip.Prefix{pfx("2001:db9::/64")}}, "2001:db9::/64: outside pool 2001:db8::/64"},
		{"unknown algo", pfx("2001:db8::/64"), netip.Prefix{}, Request{Families: only6, Algo: "eui64"}, `unknown algorithm "eui64"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(tt.pool6, tt.pool4, nil)
			_, err := a.Allocate(tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
			if a.Used() != 0 {
				t.Errorf("Used() = %d after a failed request", a.Used())
			}
		})
	}
}
