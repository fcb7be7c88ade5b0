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
	// anyOpen is the allowlist of cases that are not about it.
	anyOpen     = pfxs("2001:db8::/32", "192.0.2.0/24")
	anyReserved = []Reserved{
		{Prefix: netip.MustParsePrefix("2001:db8:42:2::/64"), What: "node node-2's pod pool"},
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), What: "the cluster's Service range"},
		{Prefix: netip.MustParsePrefix("2001:db8:1ab::2/128"), What: "an address of this node"},
	}
)

func TestAnycast(t *testing.T) {
	const k = `annotation flock.fritzlab.net/anycast=`
	tests := []struct {
		name    string
		value   *string // nil: annotation absent
		v6, v4  netip.Addr
		allowed []netip.Prefix // nil: anyOpen
		noAllow bool           // no allowedCIDRs at all
		ns      *[]netip.Prefix
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
		{name: "no allowedCIDRs: no anycast at all", value: ptrS("2001:db8:ffff::1,192.0.2.129"), v6: anyPod6, v4: anyPod4, noAllow: true,
			warns: []string{k + `"2001:db8:ffff::1,192.0.2.129" is refused: the node's NodeConfig sets no spec.anycast.allowedCIDRs, so no pod on it may serve anycast addresses`}},
		{name: "no allowedCIDRs, absent", noAllow: true, v6: anyPod6},
		{name: "reserved ranges, even when allowed", value: ptrS("2001:db8:42:2::7,198.51.100.65,2001:db8:1ab::2,2001:db8:1ab::3"), v6: anyPod6, v4: anyPod4,
			want: addrs("2001:db8:1ab::3"),
			warns: []string{
				k + `"2001:db8:42:2::7,198.51.100.65,2001:db8:1ab::2,2001:db8:1ab::3" has entry "2001:db8:42:2::7" that lies inside node node-2's pod pool 2001:db8:42:2::/64, which no pod may claim; skipping it`,
				k + `"2001:db8:42:2::7,198.51.100.65,2001:db8:1ab::2,2001:db8:1ab::3" has entry "198.51.100.65" that lies inside the cluster's Service range 198.51.100.0/24, which no pod may claim; skipping it`,
				k + `"2001:db8:42:2::7,198.51.100.65,2001:db8:1ab::2,2001:db8:1ab::3" has entry "2001:db8:1ab::2" that lies inside an address of this node 2001:db8:1ab::2/128, which no pod may claim; skipping it`,
			}},
		{name: "namespace restricts further", value: ptrS("2001:db8:ffff::1,2001:db8:fffe::1"), v6: anyPod6, ns: &[]netip.Prefix{netip.MustParsePrefix("2001:db8:ffff::/48")},
			want:  addrs("2001:db8:ffff::1"),
			warns: []string{k + `"2001:db8:ffff::1,2001:db8:fffe::1" has entry "2001:db8:fffe::1" that is outside the namespace's flock.fritzlab.net/anycast-cidrs (2001:db8:ffff::/48); skipping it`}},
		{name: "namespace allows nothing", value: ptrS("2001:db8:ffff::1"), v6: anyPod6, ns: &[]netip.Prefix{},
			warns: []string{k + `"2001:db8:ffff::1" has entry "2001:db8:ffff::1" that is outside the namespace's flock.fritzlab.net/anycast-cidrs (none); skipping it`}},
		{name: "namespace cannot widen the node", value: ptrS("203.0.113.1"), v4: anyPod4, ns: &[]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
			warns: []string{k + `"203.0.113.1" has entry "203.0.113.1" that is outside the NodeConfig's spec.anycast.allowedCIDRs (2001:db8::/32, 192.0.2.0/24); skipping it`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := map[string]string{"other": "x"}
			if tt.value != nil {
				pod[KeyAnycast] = *tt.value
			}
			lim := AnycastLimits{Allowed: tt.allowed, Pools: anyPools, Reserved: anyReserved}
			if lim.Allowed == nil {
				lim.Allowed = anyOpen
			}
			if tt.noAllow {
				lim.Allowed = nil
			}
			if tt.ns != nil {
				lim.Namespace, lim.NamespaceSet = *tt.ns, true
			}
			got, warns := Anycast(pod, tt.v6, tt.v4, lim)
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
	f.Add("2001:db8:42:2::7,198.51.100.65", uint8(3), false)
	f.Fuzz(func(t *testing.T, value string, fams uint8, restrict bool) {
		var v6, v4 netip.Addr
		if fams&1 != 0 {
			v6 = anyPod6
		}
		if fams&2 != 0 {
			v4 = anyPod4
		}
		allowed := anyOpen
		if restrict {
			allowed = anyAllow
		}
		lim := AnycastLimits{Allowed: allowed, Pools: anyPools, Reserved: anyReserved}
		if fams&4 != 0 {
			lim.Namespace, lim.NamespaceSet = pfxs("2001:db8:ffff:8000::/49", "192.0.2.0/25"), true
		}
		if fams&8 != 0 {
			lim.Allowed = nil
		}
		pod := map[string]string{KeyAnycast: value}
		got, warns := Anycast(pod, v6, v4, lim)
		if !slices.IsSortedFunc(got, netip.Addr.Compare) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("Anycast(%q) = %v: not sorted or with duplicates", value, got)
		}
		for _, a := range got {
			if !a.IsGlobalUnicast() || a.Zone() != "" || a.Is4In6() ||
				a.Is6() && !v6.IsValid() || a.Is4() && !v4.IsValid() ||
				inAny(anyPools, a) || !inAny(lim.Allowed, a) || lim.NamespaceSet && !inAny(lim.Namespace, a) ||
				slices.ContainsFunc(anyReserved, func(r Reserved) bool { return r.Prefix.Contains(a) }) {
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
		again, warns := Anycast(map[string]string{KeyAnycast: strings.Join(back, ",")}, v6, v4, lim)
		if !slices.Equal(again, got) || len(warns) != 0 {
			t.Fatalf("Anycast(%q) = %v, but written back it parses to %v with warnings %v", value, got, again, warns)
		}
	})
}

func TestParseAnycastCIDRs(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []netip.Prefix
		err  string
	}{
		{in: "", want: []netip.Prefix{}},
		{in: " 2001:db8:ffff::/48 , 192.0.2.0/24,,2001:db8:ffff::/48", want: pfxs("2001:db8:ffff::/48", "192.0.2.0/24")},
		{in: "192.0.2.1", err: `namespace annotation flock.fritzlab.net/anycast-cidrs="192.0.2.1": entry "192.0.2.1" is not a CIDR`},
		{in: "192.0.2.1/24", err: `entry "192.0.2.1/24" has host bits set (write 192.0.2.0/24)`},
		{in: "::ffff:192.0.2.0/120", err: `entry "::ffff:192.0.2.0/120" must be a plain IPv6 or IPv4 CIDR`},
	} {
		got, err := ParseAnycastCIDRs(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseAnycastCIDRs(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseAnycastCIDRs(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// FuzzParseAnycastCIDRs: any value parses or fails without panicking; what
// parses is masked, without duplicates, and written back parses to itself.
func FuzzParseAnycastCIDRs(f *testing.F) {
	f.Add("2001:db8:ffff::/48, 192.0.2.0/24")
	f.Add("192.0.2.1/24,x,,")
	f.Fuzz(func(t *testing.T, v string) {
		got, err := ParseAnycastCIDRs(v)
		if err != nil {
			if !strings.Contains(err.Error(), KeyNamespaceAnycastCIDRs) {
				t.Fatalf("error %q does not name the annotation", err)
			}
			return
		}
		var back []string
		for _, p := range got {
			if p != p.Masked() || p.Addr().Zone() != "" {
				t.Fatalf("ParseAnycastCIDRs(%q) accepted %s", v, p)
			}
			back = append(back, p.String())
		}
		if len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("duplicates in %v", got)
		}
		again, err := ParseAnycastCIDRs(strings.Join(back, ","))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("ParseAnycastCIDRs(%q) = %v, written back %v, %v", v, got, again, err)
		}
	})
}
