package annotations

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// addrCmp compares addresses by value (netip types have unexported fields).
var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

var (
	anyPod6   = netip.MustParseAddr("2001:db8:42:1::a")
	anyPod4   = netip.MustParseAddr("10.42.1.10")
	anyPools  = pfxs("2001:db8:42:1::/64", "10.42.1.0/24")
	anyAllow  = pfxs("2001:db8:ffff::/48", "192.0.2.128/25")
	allowText = "(2001:db8:ffff::/48, 192.0.2.128/25)"
)

func TestAnycast(t *testing.T) {
	const k = `annotation flock.fritzlab.net/anycast=`
	tests := []struct {
		name    string
		value   *string // nil: annotation absent
		v6, v4  netip.Addr
		allowed []netip.Prefix
		want    []netip.Addr
		warns   []string
	}{
		{name: "absent", value: nil, v6: anyPod6, v4: anyPod4},
		{name: "one IPv6", value: ptrS("2001:db8:ffff::1"), v6: anyPod6, v4: anyPod4,
			want: addrs("2001:db8:ffff::1")},
		{name: "host prefixes accepted, sorted, IPv4 first", value: ptrS("2001:db8:ffff::2/128, 192.0.2.200/32,2001:db8:ffff::1"),
			v6: anyPod6, v4: anyPod4, want: addrs("192.0.2.200", "2001:db8:ffff::1", "2001:db8:ffff::2")},
		{name: "duplicates dropped, in any spelling", value: ptrS("2001:DB8:ffff::1,2001:db8:ffff:0::1/128, 2001:db8:ffff::1"),
			v6: anyPod6, want: addrs("2001:db8:ffff::1")},
		{name: "trimmed, empty entries ignored", value: ptrS(" ,192.0.2.1 ,, "), v4: anyPod4, want: addrs("192.0.2.1")},
		{name: "empty", value: ptrS(""), v6: anyPod6, v4: anyPod4,
			warns: []string{k + `"" is empty; the pod serves no anycast address`}},
		{name: "only commas", value: ptrS(" , "), v6: anyPod6,
			warns: []string{k + `" , " is empty; the pod serves no anycast address`}},
		{name: "garbage skipped, rest kept", value: ptrS("web,192.0.2.1,1.2.3.4/x"), v4: anyPod4,
			want: addrs("192.0.2.1"),
			warns: []string{
				k + `"web,192.0.2.1,1.2.3.4/x" has entry "web" that is not an IP address; skipping it`,
				k + `"web,192.0.2.1,1.2.3.4/x" has entry "1.2.3.4/x" that is not an IP address or host prefix; skipping it`,
			}},
		{name: "not a host prefix", value: ptrS("2001:db8:ffff::/64,192.0.2.0/24,2001:db8::1/32"), v6: anyPod6, v4: anyPod4,
			warns: []string{
				k + `"2001:db8:ffff::/64,192.0.2.0/24,2001:db8::1/32" has entry "2001:db8:ffff::/64" that is not a host address (/64, want /128); skipping it`,
				k + `"2001:db8:ffff::/64,192.0.2.0/24,2001:db8::1/32" has entry "192.0.2.0/24" that is not a host address (/24, want /32); skipping it`,
				k + `"2001:db8:ffff::/64,192.0.2.0/24,2001:db8::1/32" has entry "2001:db8::1/32" that is not a host address (/32, want /128); skipping it`,
			}},
		{name: "not global unicast", value: ptrS("fe80::1,ff02::1,::1,::,127.0.0.1,169.254.1.1,224.0.0.1,0.0.0.0,255.255.255.255"),
			v6: anyPod6, v4: anyPod4, warns: func() []string {
				var ws []string
				for _, e := range []string{"fe80::1", "ff02::1", "::1", "::", "127.0.0.1", "169.254.1.1", "224.0.0.1", "0.0.0.0", "255.255.255.255"} {
					ws = append(ws, k+`"fe80::1,ff02::1,::1,::,127.0.0.1,169.254.1.1,224.0.0.1,0.0.0.0,255.255.255.255" has entry "`+e+
						`" that is not a global unicast address (link-local, loopback, multicast, unspecified and broadcast addresses cannot be anycast); skipping it`)
				}
				return ws
			}()},
		{name: "zone and IPv4-mapped", value: ptrS("2001:db8:ffff::1%eth0,::ffff:192.0.2.1"), v6: anyPod6, v4: anyPod4,
			warns: []string{
				k + `"2001:db8:ffff::1%eth0,::ffff:192.0.2.1" has entry "2001:db8:ffff::1%eth0" that has a zone; skipping it`,
				k + `"2001:db8:ffff::1%eth0,::ffff:192.0.2.1" has entry "::ffff:192.0.2.1" that is an IPv4-mapped IPv6 address (write the IPv4 address); skipping it`,
			}},
		{name: "family the pod lacks: IPv6-only pod", value: ptrS("192.0.2.1,2001:db8:ffff::1"), v6: anyPod6,
			want:  addrs("2001:db8:ffff::1"),
			warns: []string{k + `"192.0.2.1,2001:db8:ffff::1" has entry "192.0.2.1" that is IPv4 but the pod has no IPv4 address to route it via; skipping it`}},
		{name: "family the pod lacks: IPv4-only pod", value: ptrS("192.0.2.1,2001:db8:ffff::1"), v4: anyPod4,
			want:  addrs("192.0.2.1"),
			warns: []string{k + `"192.0.2.1,2001:db8:ffff::1" has entry "2001:db8:ffff::1" that is IPv6 but the pod has no IPv6 address to route it via; skipping it`}},
		{name: "inside allowed", value: ptrS("2001:db8:ffff:1::1,192.0.2.129"), v6: anyPod6, v4: anyPod4, allowed: anyAllow,
			want: addrs("192.0.2.129", "2001:db8:ffff:1::1")},
		{name: "outside allowed", value: ptrS("2001:db8:fffe::1,192.0.2.127,192.0.2.255"), v6: anyPod6, v4: anyPod4, allowed: anyAllow,
			want: addrs("192.0.2.255"),
			warns: []string{
				k + `"2001:db8:fffe::1,192.0.2.127,192.0.2.255" has entry "2001:db8:fffe::1" that is outside the NodeConfig's spec.anycast.allowedCIDRs ` + allowText + `; skipping it`,
				k + `"2001:db8:fffe::1,192.0.2.127,192.0.2.255" has entry "192.0.2.127" that is outside the NodeConfig's spec.anycast.allowedCIDRs ` + allowText + `; skipping it`,
			}},
		{name: "allowlist of one family only refuses the other", value: ptrS("192.0.2.1,2001:db8::1"), v6: anyPod6, v4: anyPod4,
			allowed: pfxs("2001:db8::/32"), want: addrs("2001:db8::1"),
			warns: []string{k + `"192.0.2.1,2001:db8::1" has entry "192.0.2.1" that is outside the NodeConfig's spec.anycast.allowedCIDRs (2001:db8::/32); skipping it`}},
		{name: "inside the node's pools, even when allowed", value: ptrS("2001:db8:42:1::b,10.42.1.1,10.42.1.10"), v6: anyPod6, v4: anyPod4,
			allowed: pfxs("2001:db8::/32", "10.0.0.0/8"),
			warns: []string{
				k + `"2001:db8:42:1::b,10.42.1.1,10.42.1.10" has entry "2001:db8:42:1::b" that lies inside the node's pod pool 2001:db8:42:1::/64 (those addresses are for IPAM); skipping it`,
				k + `"2001:db8:42:1::b,10.42.1.1,10.42.1.10" has entry "10.42.1.1" that lies inside the node's pod pool 10.42.1.0/24 (those addresses are for IPAM); skipping it`,
				k + `"2001:db8:42:1::b,10.42.1.1,10.42.1.10" has entry "10.42.1.10" that lies inside the node's pod pool 10.42.1.0/24 (those addresses are for IPAM); skipping it`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := map[string]string{"other": "x"}
			if tt.value != nil {
				pod[KeyAnycast] = *tt.value
			}
			got, warns := Anycast(pod, tt.v6, tt.v4, tt.allowed, anyPools)
			if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
			var ws []string
			for _, w := range warns {
				ws = append(ws, w.String())
			}
			if diff := cmp.Diff(tt.warns, ws); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func ptrS(s string) *string { return &s }

// FuzzAnycast: any annotation value parses without panicking, and what comes
// out is servable: sorted, without duplicates, global unicast of a family the
// pod has, inside the allowlist, outside the pools; every warning names the
// annotation; each entry yields an address or a warning, never both; and
// the result, written back as an annotation, parses to itself silently.
func FuzzAnycast(f *testing.F) {
	f.Add("2001:db8:ffff::1, 192.0.2.200/32", uint8(3), true)
	f.Add("fe80::1%eth0,::ffff:1.2.3.4,10.42.1.5,2001:db8:ffff::/64", uint8(1), false)
	f.Add("", uint8(2), true)
	f.Add(",,192.0.2.129,192.0.2.129/32,x", uint8(2), true)
	f.Fuzz(func(t *testing.T, value string, fams uint8, restrict bool) {
		var v6, v4 netip.Addr
		if fams&1 != 0 {
			v6 = anyPod6
		}
		if fams&2 != 0 {
			v4 = anyPod4
		}
		var allowed []netip.Prefix
		if restrict {
			allowed = anyAllow
		}
		pod := map[string]string{KeyAnycast: value}
		got, warns := Anycast(pod, v6, v4, allowed, anyPools)
		if !slices.IsSortedFunc(got, netip.Addr.Compare) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("Anycast(%q) = %v: not sorted or with duplicates", value, got)
		}
		for _, a := range got {
			if !a.IsGlobalUnicast() || a.Zone() != "" || a.Is4In6() ||
				a.Is6() && !v6.IsValid() || a.Is4() && !v4.IsValid() ||
				slices.ContainsFunc(anyPools, func(p netip.Prefix) bool { return p.Contains(a) }) ||
				restrict && !slices.ContainsFunc(allowed, func(p netip.Prefix) bool { return p.Contains(a) }) {
				t.Fatalf("Anycast(%q) accepted %s", value, a)
			}
		}
		for _, w := range warns {
			if w.Key != KeyAnycast || w.Value != value {
				t.Fatalf("warning %q names the wrong annotation", w)
			}
		}
		entries := 0
		for e := range strings.SplitSeq(value, ",") {
			if strings.TrimSpace(e) != "" {
				entries++
			}
		}
		if len(got)+len(warns) > max(entries, 1) {
			t.Fatalf("Anycast(%q): %d addresses and %d warnings from %d entries", value, len(got), len(warns), entries)
		}
		if len(got) == 0 {
			return
		}
		var back []string
		for _, a := range got {
			back = append(back, a.String())
		}
		again, warns := Anycast(map[string]string{KeyAnycast: strings.Join(back, ",")}, v6, v4, allowed, anyPools)
		if !slices.Equal(again, got) || len(warns) != 0 {
			t.Fatalf("Anycast(%q) = %v, but written back it parses to %v with warnings %v", value, got, again, warns)
		}
	})
}
