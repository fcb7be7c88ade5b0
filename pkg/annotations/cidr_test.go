package annotations

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var pfx = netip.MustParsePrefix

func pfxs(ss ...string) []netip.Prefix {
	out := []netip.Prefix{}
	for _, s := range ss {
		out = append(out, pfx(s))
	}
	return out
}

// prefixCmp compares prefixes by value (netip types have unexported fields).
var prefixCmp = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func TestCIDRs(t *testing.T) {
	tests := []struct {
		name  string
		pod   map[string]string
		v6    bool
		want  []netip.Prefix
		warns []string
	}{
		{name: "absent", pod: nil, v6: true, want: nil},
		{name: "one", pod: map[string]string{KeyCIDR6: "2001:db8::/64"}, v6: true, want: pfxs("2001:db8::/64")},
		{name: "list trimmed, empty entries ignored", pod: map[string]string{KeyCIDR4: " 10.42.1.0/25 ,, 10.42.1.128/26 ,"},
			want: pfxs("10.42.1.0/25", "10.42.1.128/26")},
		{name: "empty value", pod: map[string]string{KeyCIDR6: ""}, v6: true, want: nil,
			warns: []string{`annotation flock.fritzlab.net/cidr6="" is empty; using the whole node pool`}},
		{name: "only commas", pod: map[string]string{KeyCIDR4: " , ,"}, want: nil,
			warns: []string{`annotation flock.fritzlab.net/cidr4=" , ," is empty; using the whole node pool`}},
		{name: "invalid skipped, rest kept", pod: map[string]string{KeyCIDR6: "zz,2001:db8::/64"}, v6: true,
			want:  pfxs("2001:db8::/64"),
			warns: []string{`annotation flock.fritzlab.net/cidr6="zz,2001:db8::/64" has entry "zz" that is not a CIDR (netip.ParsePrefix("zz"): no '/'); skipping it`}},
		{name: "bare address is not a CIDR", pod: map[string]string{KeyCIDR4: "10.42.1.7"}, want: pfxs(),
			warns: []string{`annotation flock.fritzlab.net/cidr4="10.42.1.7" has entry "10.42.1.7" that is not a CIDR (netip.ParsePrefix("10.42.1.7"): no '/'); skipping it`}},
		{name: "wrong family v4 in cidr6", pod: map[string]string{KeyCIDR6: "10.0.0.0/8"}, v6: true, want: pfxs(),
			warns: []string{`annotation flock.fritzlab.net/cidr6="10.0.0.0/8" has entry "10.0.0.0/8" that is not an IPv6 CIDR; skipping it`}},
		{name: "wrong family v6 in cidr4", pod: map[string]string{KeyCIDR4: "2001:db8::/64,10.42.1.0/24"}, want: pfxs("10.42.1.0/24"),
			warns: []string{`annotation flock.fritzlab.net/cidr4="2001:db8::/64,10.42.1.0/24" has entry "2001:db8::/64" that is not an IPv4 CIDR; skipping it`}},
		{name: "mapped v4 is neither family", pod: map[string]string{KeyCIDR4: "::ffff:10.0.0.0/104"}, want: pfxs(),
			warns: []string{`annotation flock.fritzlab.net/cidr4="::ffff:10.0.0.0/104" has entry "::ffff:10.0.0.0/104" that is not an IPv4 CIDR; skipping it`}},
		{name: "host bits set", pod: map[string]string{KeyCIDR4: "10.42.1.5/24"}, want: pfxs(),
			warns: []string{`annotation flock.fritzlab.net/cidr4="10.42.1.5/24" has entry "10.42.1.5/24" with host bits set (the network is 10.42.1.0/24); skipping it`}},
		{name: "other key not read", pod: map[string]string{KeyCIDR4: "10.0.0.0/8"}, v6: true, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := KeyCIDR4
			if tt.v6 {
				key = KeyCIDR6
			}
			got, warns := CIDRs(tt.pod, key, tt.v6)
			// nil and empty mean different things here, so compare exactly.
			if (got == nil) != (tt.want == nil) {
				t.Errorf("CIDRs = %#v, want nil %v", got, tt.want == nil)
			}
			if diff := cmp.Diff(tt.want, got, prefixCmp, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("CIDRs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.warns, strs(warns)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNarrow(t *testing.T) {
	pool6 := pfx("2001:db8:42:1::/64")
	pool4 := pfx("10.42.1.0/24")
	tests := []struct {
		name  string
		pool  netip.Prefix
		cidrs []netip.Prefix
		want  []netip.Prefix
		warns []string
	}{
		{name: "no annotation", pool: pool6, cidrs: nil, want: pfxs("2001:db8:42:1::/64")},
		{name: "equal", pool: pool6, cidrs: pfxs("2001:db8:42:1::/64"), want: pfxs("2001:db8:42:1::/64")},
		{name: "supernet", pool: pool6, cidrs: pfxs("2001:db8::/32"), want: pfxs("2001:db8:42:1::/64")},
		{name: "subnet", pool: pool6, cidrs: pfxs("2001:db8:42:1:abcd::/80"), want: pfxs("2001:db8:42:1:abcd::/80")},
		{name: "disjoint", pool: pool6, cidrs: pfxs("2001:db8:42:2::/64"), want: pfxs(),
			warns: []string{"has entry 2001:db8:42:2::/64 outside node pool 2001:db8:42:1::/64; skipping it"}},
		{name: "mixed keeps order", pool: pool4,
			cidrs: pfxs("10.42.1.128/25", "10.9.0.0/16", "10.0.0.0/8", "10.42.1.64/26"),
			want:  pfxs("10.42.1.128/25", "10.42.1.0/24", "10.42.1.64/26"),
			warns: []string{"has entry 10.9.0.0/16 outside node pool 10.42.1.0/24; skipping it"}},
		{name: "duplicates dropped", pool: pool4, cidrs: pfxs("10.42.1.0/24", "10.0.0.0/8", "10.42.1.0/24"), want: pfxs("10.42.1.0/24")},
		{name: "all skipped", pool: pool4, cidrs: pfxs("192.168.0.0/16", "10.42.2.0/24"), want: pfxs(),
			warns: []string{
				"has entry 192.168.0.0/16 outside node pool 10.42.1.0/24; skipping it",
				"has entry 10.42.2.0/24 outside node pool 10.42.1.0/24; skipping it",
			}},
		{name: "parsed but empty", pool: pool4, cidrs: pfxs(), want: pfxs()},
		{name: "wrong family", pool: pool4, cidrs: pfxs("2001:db8::/32"), want: pfxs(),
			warns: []string{"has entry 2001:db8::/32 of another family than node pool 10.42.1.0/24; skipping it"}},
		{name: "v4 single address", pool: pool4, cidrs: pfxs("10.42.1.9/32"), want: pfxs("10.42.1.9/32")},
		{name: "v6 too narrow", pool: pool6, cidrs: pfxs("2001:db8:42:1::100/121", "2001:db8:42:1::/120"), want: pfxs("2001:db8:42:1::/120"),
			warns: []string{"has entry 2001:db8:42:1::100/121, longer than /120: too narrow to derive an IPv6 interface identifier in; skipping it"}},
		{name: "no pool", pool: netip.Prefix{}, cidrs: pfxs("10.0.0.0/8"), want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warns := Narrow(tt.pool, tt.cidrs)
			if diff := cmp.Diff(tt.want, got, prefixCmp, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Narrow (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.warns, strs(warns)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}
