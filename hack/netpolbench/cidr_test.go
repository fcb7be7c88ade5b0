package main

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func TestSubtract(t *testing.T) {
	for _, tc := range []struct {
		p      string
		except []netip.Prefix
		want   []netip.Prefix
		// coverOnly: check what the result covers, not its prefixes.
		coverOnly bool
	}{
		{"10.0.0.0/8", nil, prefixes("10.0.0.0/8"), false},
		{"10.0.0.0/8", prefixes("10.0.0.0/8"), nil, false},
		{"10.1.0.0/16", prefixes("10.0.0.0/8"), nil, false},
		{"10.0.0.0/8", prefixes("192.168.0.0/16", "2001:db8::/32"), prefixes("10.0.0.0/8"), false},
		{"10.0.0.0/30", prefixes("10.0.0.1/32"), prefixes("10.0.0.0/32", "10.0.0.2/31"), false},
		{"10.0.0.0/8", prefixes("10.128.0.0/9"), prefixes("10.0.0.0/9"), false},
		{"10.0.0.0/8", prefixes("10.42.0.0/16"), prefixes("10.0.0.0/11", "10.32.0.0/13", "10.40.0.0/15",
			"10.43.0.0/16", "10.44.0.0/14", "10.48.0.0/12", "10.64.0.0/10", "10.128.0.0/9"), false},
		{"::/0", prefixes("8000::/1", "4000::/2"), prefixes("::/2"), false},
		{"0.0.0.0/0", prefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), nil, true},
	} {
		got := subtract(netip.MustParsePrefix(tc.p), tc.except)
		if !tc.coverOnly {
			if d := cmp.Diff(tc.want, got, cmpopts.EquateComparable(netip.Prefix{})); d != "" {
				t.Errorf("subtract(%s, %v) (-want +got):\n%s", tc.p, tc.except, d)
			}
		}
		// Whatever the shape, the result covers exactly p less the excepts.
		probe := netip.MustParsePrefix(tc.p)
		for _, a := range samples(probe) {
			in := false
			for _, g := range got {
				in = in || g.Contains(a)
			}
			out := false
			for _, e := range tc.except {
				out = out || e.Contains(a)
			}
			if in == out {
				t.Errorf("subtract(%s, %v): %s covered=%v, excepted=%v", tc.p, tc.except, a, in, out)
			}
		}
	}
}

// samples are addresses across p: its first and last, and those next to
// every private range boundary the cases use.
func samples(p netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, s := range []string{"10.0.0.0", "10.0.0.1", "10.0.0.2", "10.41.255.255", "10.42.0.0", "10.42.255.255", "10.43.0.0",
		"10.127.255.255", "10.128.0.0", "10.255.255.255", "9.255.255.255", "11.0.0.0", "172.15.255.255", "172.16.0.0",
		"172.31.255.255", "172.32.0.0", "192.167.255.255", "192.168.0.1", "192.169.0.0", "::1", "3fff::1", "4000::", "8000::1", "ffff::1"} {
		a := netip.MustParseAddr(s)
		if p.Contains(a) {
			out = append(out, a)
		}
	}
	return out
}
