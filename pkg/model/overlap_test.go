package model

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestCheckOverlap(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	pools := func(name string, age int, cidr6, cidr4 string) Pools {
		return PoolsFromSpec(name, t0.Add(time.Duration(age)*time.Second), cidr6, cidr4)
	}
	node1 := pools("node-1", 0, "2001:db8:42:1::/64", "10.42.1.0/24")
	for _, tc := range []struct {
		name   string
		self   Pools
		others []Pools
		want   error
	}{
		{"alone", node1, nil, nil},
		{"itself", node1, []Pools{node1}, nil},
		{"disjoint", pools("node-2", 1, "2001:db8:42:2::/64", "10.42.2.0/24"), []Pools{node1}, nil},
		{"same ipv6", pools("node-2", 1, "2001:db8:42:1::/64", "10.42.2.0/24"), []Pools{node1},
			&OverlapError{"node-2", "node-1", "spec.cidr6", netip.MustParsePrefix("2001:db8:42:1::/64"), netip.MustParsePrefix("2001:db8:42:1::/64")}},
		{"ipv6 subnet", pools("node-2", 1, "2001:db8:42:1:8000::/65", ""), []Pools{node1},
			&OverlapError{"node-2", "node-1", "spec.cidr6", netip.MustParsePrefix("2001:db8:42:1:8000::/65"), netip.MustParsePrefix("2001:db8:42:1::/64")}},
		{"ipv6 supernet", pools("node-2", 1, "2001:db8:42::/48", ""), []Pools{node1},
			&OverlapError{"node-2", "node-1", "spec.cidr6", netip.MustParsePrefix("2001:db8:42::/48"), netip.MustParsePrefix("2001:db8:42:1::/64")}},
		{"ipv4 only", pools("node-2", 1, "2001:db8:42:2::/64", "10.42.0.0/16"), []Pools{node1},
			&OverlapError{"node-2", "node-1", "spec.cidr4", netip.MustParsePrefix("10.42.0.0/16"), netip.MustParsePrefix("10.42.1.0/24")}},
		{"adjacent ipv4", pools("node-2", 1, "", "10.42.0.0/24"), []Pools{node1}, nil},
		// The older NodeConfig keeps its pools; the newer one is rejected.
		{"older self wins", pools("node-0", -1, "2001:db8:42:1::/64", ""), []Pools{node1}, nil},
		{"same second, smaller name wins", pools("node-0", 0, "2001:db8:42:1::/64", ""), []Pools{node1}, nil},
		{"same second, larger name loses", pools("node-9", 0, "2001:db8:42:1::/64", ""), []Pools{node1},
			&OverlapError{"node-9", "node-1", "spec.cidr6", netip.MustParsePrefix("2001:db8:42:1::/64"), netip.MustParsePrefix("2001:db8:42:1::/64")}},
		// Families never overlap one another, nor do missing pools.
		{"no ipv4 pools", pools("node-2", 1, "2001:db8:42:2::/64", ""), []Pools{pools("node-1", 0, "2001:db8:42:1::/64", "")}, nil},
		{"unparsable other", pools("node-2", 1, "2001:db8:42:1::/64", ""), []Pools{pools("node-1", 0, "2001:db8:42:1::1/64", "nonsense")}, nil},
		{"first older one reported", pools("node-3", 5, "2001:db8:42::/48", ""),
			[]Pools{node1, pools("node-2", 1, "2001:db8:42:2::/64", ""), pools("node-4", 9, "2001:db8:42:4::/64", "")},
			&OverlapError{"node-3", "node-1", "spec.cidr6", netip.MustParsePrefix("2001:db8:42::/48"), netip.MustParsePrefix("2001:db8:42:1::/64")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckOverlap(tc.self, tc.others)
			if d := cmp.Diff(tc.want, got, cmpopts.EquateComparable(netip.Prefix{})); d != "" {
				t.Errorf("CheckOverlap (-want +got):\n%s", d)
			}
		})
	}
	err := CheckOverlap(pools("node-2", 1, "2001:db8:42:1::/64", ""), []Pools{node1})
	const want = "nodeconfig node-2: spec.cidr6 2001:db8:42:1::/64 overlaps spec.cidr6 2001:db8:42:1::/64 of NodeConfig node-1, which is older: pools of different nodes must not overlap"
	if err == nil || err.Error() != want {
		t.Errorf("message %v, want %s", err, want)
	}
}

// Overlap is symmetric, agrees with a brute-force reading of the prefixes,
// and exactly one of two overlapping NodeConfigs is rejected.
func FuzzCheckOverlap(f *testing.F) {
	f.Add("2001:db8:42:1::/64", "10.42.1.0/24", "2001:db8:42::/48", "10.42.2.0/24", int64(0), int64(1))
	f.Add("2001:db8::/120", "10.0.0.0/30", "2001:db8::80/121", "10.0.0.4/30", int64(5), int64(5))
	f.Fuzz(func(t *testing.T, a6, a4, b6, b4 string, ageA, ageB int64) {
		t0 := time.Unix(0, 0)
		a := PoolsFromSpec("a", t0.Add(time.Duration(ageA%1e6)*time.Second), a6, a4)
		b := PoolsFromSpec("b", t0.Add(time.Duration(ageB%1e6)*time.Second), b6, b4)
		for _, pair := range [][2]netip.Prefix{{a.Pool6, b.Pool6}, {a.Pool4, b.Pool4}} {
			x, y := pair[0], pair[1]
			if Overlaps(x, y) != Overlaps(y, x) {
				t.Fatalf("Overlaps(%s, %s) is not symmetric", x, y)
			}
			// Two prefixes overlap exactly when one contains the other's
			// network address.
			brute := x.IsValid() && y.IsValid() && (x.Contains(y.Addr()) || y.Contains(x.Addr()))
			if Overlaps(x, y) != brute {
				t.Fatalf("Overlaps(%s, %s) = %v, brute force says %v", x, y, Overlaps(x, y), brute)
			}
		}
		overlap := Overlaps(a.Pool6, b.Pool6) || Overlaps(a.Pool4, b.Pool4)
		ea, eb := CheckOverlap(a, []Pools{a, b}), CheckOverlap(b, []Pools{b, a})
		rejected := 0
		for _, e := range []error{ea, eb} {
			if e != nil {
				rejected++
			}
		}
		if want := map[bool]int{true: 1, false: 0}[overlap]; rejected != want {
			t.Fatalf("%+v and %+v: %d rejected (%v, %v), want %d", a, b, rejected, ea, eb, want)
		}
	})
}
