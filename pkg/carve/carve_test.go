package carve

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func pfxs(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, pfx(s))
	}
	return out
}

// take runs Next until the range is exhausted or n blocks are out.
func take(a *Allocator, n int) []string {
	var out []string
	for range n {
		b, ok := a.Next()
		if !ok {
			out = append(out, "exhausted")
			break
		}
		out = append(out, b.String())
	}
	return out
}

func TestAllocator(t *testing.T) {
	for _, tc := range []struct {
		name  string
		r     Range
		taken []netip.Prefix
		n     int
		want  []string
		used  int // after the n takes
	}{
		{"ipv6-/48-into-/64", Range{pfx("2001:db8:42::/48"), 64}, nil, 3,
			[]string{"2001:db8:42::/64", "2001:db8:42:1::/64", "2001:db8:42:2::/64"}, 3},
		{"ipv4-/16-into-/24", Range{pfx("10.42.0.0/16"), 24}, nil, 2,
			[]string{"10.42.0.0/24", "10.42.1.0/24"}, 2},
		{"holes-reused-lowest-first", Range{pfx("10.42.0.0/16"), 24}, pfxs("10.42.0.0/24", "10.42.2.0/24", "10.42.3.0/24"), 3,
			[]string{"10.42.1.0/24", "10.42.4.0/24", "10.42.5.0/24"}, 6},
		{"exhausted", Range{pfx("10.42.0.0/23"), 24}, pfxs("10.42.1.0/24"), 3,
			[]string{"10.42.0.0/24", "exhausted"}, 2},
		{"full-from-the-start", Range{pfx("2001:db8::/63"), 64}, pfxs("2001:db8::/64", "2001:db8:0:1::/64"), 1,
			[]string{"exhausted"}, 2},
		{"smaller-taken-spoils-its-block", Range{pfx("10.42.0.0/16"), 24}, pfxs("10.42.0.128/25"), 1,
			[]string{"10.42.1.0/24"}, 2},
		{"larger-taken-spoils-many", Range{pfx("10.42.0.0/16"), 24}, pfxs("10.42.0.0/22"), 1,
			[]string{"10.42.4.0/24"}, 5},
		{"covering-taken-spoils-all", Range{pfx("10.42.0.0/16"), 24}, pfxs("10.0.0.0/8"), 1,
			[]string{"exhausted"}, 256},
		{"outside-and-other-family-ignored", Range{pfx("10.42.0.0/16"), 24}, pfxs("10.43.0.0/24", "2001:db8::/64", "::ffff:10.42.0.0/120"), 1,
			[]string{"10.42.0.0/24"}, 1},
		{"one-block-range", Range{pfx("198.18.7.0/24"), 24}, nil, 2,
			[]string{"198.18.7.0/24", "exhausted"}, 1},
		{"ipv6-/120-blocks", Range{pfx("2001:db8::/112"), 120}, pfxs("2001:db8::/120"), 1,
			[]string{"2001:db8::100/120"}, 2},
		{"ipv6-high-bits", Range{pfx("2001:db8:ffff:ff00::/56"), 64}, pfxs("2001:db8:ffff:ff00::/57"), 1,
			[]string{"2001:db8:ffff:ff80::/64"}, 129},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.r.Validate(); err != nil {
				t.Fatal(err)
			}
			a := NewAllocator(tc.r, tc.taken)
			if diff := cmp.Diff(tc.want, take(a, tc.n)); diff != "" {
				t.Errorf("blocks (-want +got):\n%s", diff)
			}
			if a.Used() != tc.used || a.Free() != tc.r.Total()-tc.used {
				t.Errorf("used %d free %d, want %d and %d", a.Used(), a.Free(), tc.used, tc.r.Total()-tc.used)
			}
		})
	}
}

// A block freed (its NodeConfig deleted) is the next one handed out: the
// allocator is rebuilt from what is taken, as the controller does.
func TestHoleReused(t *testing.T) {
	r := Range{pfx("2001:db8:42::/48"), 64}
	var taken []netip.Prefix
	a := NewAllocator(r, nil)
	for range 5 {
		b, _ := a.Next()
		taken = append(taken, b)
	}
	taken = append(taken[:2], taken[3:]...) // 2001:db8:42:2::/64 is freed
	got, _ := NewAllocator(r, taken).Next()
	if got != pfx("2001:db8:42:2::/64") {
		t.Errorf("next after a deletion: %s, want the freed 2001:db8:42:2::/64", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		r    Range
		want string
	}{
		{Range{netip.Prefix{}, 64}, "not a valid prefix"},
		{Range{pfx("2001:db8:42::1/48"), 64}, "has host bits set (give 2001:db8:42::/48)"},
		{Range{pfx("10.42.0.0/16"), 8}, "block size /8 must be /16 to /32"},
		{Range{pfx("10.42.0.0/16"), 33}, "block size /33 must be /16 to /32"},
		{Range{pfx("2001:db8::/32"), 64}, "makes 2^32 blocks, at most 2^24"},
		{Range{pfx("::ffff:10.0.0.0/104"), 120}, "not a plain IPv4 or IPv6 prefix"},
	} {
		err := tc.r.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%v) = %v, want %q", tc.r, err, tc.want)
		}
	}
	for _, r := range []Range{{pfx("2001:db8:42::/48"), 64}, {pfx("10.0.0.0/8"), 30}, {pfx("10.0.0.0/8"), 8}} {
		if err := r.Validate(); err != nil {
			t.Errorf("Validate(%v): %v", r, err)
		}
	}
}

func TestConflicts(t *testing.T) {
	got := Conflicts(pfxs("2001:db8:42::/48", "10.42.0.0/16", "2001:db8:42:8000::/49", "10.0.0.0/8", "2001:db8:43::/48"))
	if diff := cmp.Diff([]int{-1, -1, 0, 1, -1}, got); diff != "" {
		t.Errorf("Conflicts (-want +got):\n%s", diff)
	}
}

func TestBlockIndexRoundTrip(t *testing.T) {
	for _, r := range []Range{{pfx("2001:db8:42::/48"), 64}, {pfx("10.42.0.0/16"), 24}, {pfx("2001:db8::/104"), 120}} {
		for _, i := range []int{0, 1, 2, 255, r.Total() - 1} {
			b := r.Block(i)
			if !r.IsBlock(b) || r.index(b.Addr()) != i || r.index(last(b)) != i {
				t.Errorf("%v: block %d = %s does not map back", r, i, b)
			}
		}
	}
}
