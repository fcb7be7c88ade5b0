package annotations

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/iid"
	"github.com/fritzlab/flock/pkg/model"
)

// FuzzFamilies: any annotation values and node defaults resolve without
// panicking; the result has a family exactly when there is no error; a
// warning is only ever about an annotation that is present, and the value
// the pod states wins when it is a clean true/false.
func FuzzFamilies(f *testing.F) {
	f.Add("true", true, "false", true, uint8(0))
	f.Add("false", true, "false", true, uint8(0))
	f.Add("maybe", true, "", true, uint8(3))
	f.Add(" TRUE ", true, "1", true, uint8(2))
	f.Add("", false, "", false, uint8(5))
	f.Fuzz(func(t *testing.T, v6 string, has6 bool, v4 string, has4 bool, defaults uint8) {
		pod := map[string]string{}
		if has6 {
			pod[KeyIPv6] = v6
		}
		if has4 {
			pod[KeyIPv4] = v4
		}
		// Two bits per family: set or not, and its value.
		var node model.FamilyDefaults
		if defaults&1 != 0 {
			node.IPv6 = ptr(defaults&2 != 0)
		}
		if defaults&4 != 0 {
			node.IPv4 = ptr(defaults&8 != 0)
		}
		got, warns, err := Families(pod, node)
		if (err != nil) != (got == model.Families{}) {
			t.Fatalf("Families = %+v, %v: a result without family must be an error and vice versa", got, err)
		}
		if len(warns) > len(pod) {
			t.Fatalf("%d warnings for %d annotations", len(warns), len(pod))
		}
		for _, w := range warns {
			if v, ok := pod[w.Key]; !ok || v != w.Value {
				t.Fatalf("warning %q about an annotation the pod does not have", w)
			}
		}
		if s := strings.ToLower(strings.TrimSpace(v6)); err == nil && has6 &&
			(s == "true" && !got.IPv6 || s == "false" && got.IPv6) {
			t.Fatalf("ipv6 annotation %q ignored: got %+v", v6, got)
		}
	})
}

// FuzzCIDRs: any annotation value parses without panicking; whatever it
// yields, Narrow only returns masked ranges inside the pool that
// the IPv6 interface identifier algorithms can work in.
func FuzzCIDRs(f *testing.F) {
	f.Add("2001:db8:42:1::/64", true)
	f.Add("2001:db8::/32, 2001:db8:42:1:1::/80 ,zz,,10.0.0.0/8", true)
	f.Add("10.42.1.0/25,10.42.1.5/24,0.0.0.0/0,::ffff:10.42.1.0/120", false)
	f.Add("", false)
	f.Add("2001:db8:42:1::1/128", true)
	f.Fuzz(func(t *testing.T, value string, v6 bool) {
		key, pool := KeyCIDR4, pfx("10.42.1.0/24")
		if v6 {
			key, pool = KeyCIDR6, pfx("2001:db8:42:1::/64")
		}
		cidrs, warns := CIDRs(map[string]string{key: value}, key, v6)
		for _, c := range cidrs {
			if !ofFamily(c, v6) || c != c.Masked() {
				t.Fatalf("CIDRs(%q) returned %s: wrong family or host bits set", value, c)
			}
		}
		for _, w := range warns {
			if w.Key != key || w.Value != value {
				t.Fatalf("warning %q names the wrong annotation", w)
			}
		}
		ranges, _ := Narrow(pool, cidrs)
		if cidrs == nil && (len(ranges) != 1 || ranges[0] != pool) {
			t.Fatalf("no CIDRs gave ranges %v, want the pool", ranges)
		}
		if len(ranges) > max(len(cidrs), 1) {
			t.Fatalf("%d ranges from %d CIDRs", len(ranges), len(cidrs))
		}
		for _, r := range ranges {
			if !within(r, pool) {
				t.Fatalf("CIDRs %q: range %s not inside pool %s", value, r, pool)
			}
			if v6 && r.Bits() > iid.MaxBits {
				t.Fatalf("CIDRs %q: range %s too long for an IID", value, r)
			}
		}
	})
}

// FuzzNarrow checks the range invariants for arbitrary pools, not only the
// fixed ones FuzzCIDRs parses against.
func FuzzNarrow(f *testing.F) {
	f.Add("2001:db8::/48", "2001:db8::/32,2001:db8:0:1::/64,2001:db9::/48")
	f.Add("10.0.0.0/30", "10.0.0.0/8,10.0.0.3/32,2001:db8::/32")
	f.Fuzz(func(t *testing.T, pool, value string) {
		p, err := netip.ParsePrefix(pool)
		if err != nil {
			t.Skip()
		}
		v6 := p.Addr().Is6()
		cidrs, _ := CIDRs(map[string]string{KeyCIDR6: value}, KeyCIDR6, v6)
		ranges, _ := Narrow(p, cidrs)
		for _, r := range ranges {
			if !within(r, p.Masked()) {
				t.Fatalf("range %s not inside pool %s", r, p)
			}
		}
	})
}

// FuzzIPAlgo: any pod and node values give one of the three algorithms, at
// most one warning per level, and a clean pod value always wins.
func FuzzIPAlgo(f *testing.F) {
	f.Add("hash", true, "ipv4", true)
	f.Add("", true, "bogus", true)
	f.Add("IPv4 ", true, "", false)
	f.Add("", false, "random", true)
	f.Fuzz(func(t *testing.T, podV string, podHas bool, nodeV string, nodeHas bool) {
		pod, node := map[string]string{}, map[string]string{}
		if podHas {
			pod[KeyIPAlgo] = podV
		}
		if nodeHas {
			node[KeyIPAlgo] = nodeV
		}
		got, warns := IPAlgo(pod, node)
		if _, err := iid.ParseAlgo(string(got)); err != nil || string(got) != strings.ToLower(string(got)) {
			t.Fatalf("IPAlgo = %q, not a canonical algorithm", got)
		}
		if len(warns) > 2 {
			t.Fatalf("%d warnings", len(warns))
		}
		if want, err := iid.ParseAlgo(podV); podHas && err == nil && (got != want || len(warns) != 0) {
			t.Fatalf("pod says %q, got %q with warnings %v", podV, got, warns)
		}
	})
}
