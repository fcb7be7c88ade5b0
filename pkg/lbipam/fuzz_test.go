package lbipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// FuzzParseIPs checks that the annotation parser never panics, that what
// it accepts is one or two unicast addresses of distinct families which
// parse back the same from their plain form, and that every error names
// the annotation.
func FuzzParseIPs(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "2001:db8::1,192.0.2.1", " 192.0.2.1 , 2001:db8::1", "", ",", "192.0.2.1,192.0.2.2",
		"fe80::1%eth0", "::ffff:192.0.2.1", "1.2.3.4,5.6.7.8,::1", "2001:db8::1,,", "192.0.2.01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		as, err := ParseIPs(v)
		if err != nil {
			if !strings.Contains(err.Error(), v1alpha1.AnnotationLoadBalancerIPs) {
				t.Fatalf("error %q does not name the annotation", err)
			}
			return
		}
		if len(as) == 0 || len(as) > 2 || len(as) == 2 && Family(as[0]) == Family(as[1]) {
			t.Fatalf("ParseIPs(%q) = %v: want one address per family", v, as)
		}
		var plain []string
		for _, a := range as {
			if !a.IsGlobalUnicast() || a.Zone() != "" || a.Is4In6() {
				t.Fatalf("ParseIPs(%q) accepted %s", v, a)
			}
			plain = append(plain, a.String())
		}
		again, err := ParseIPs(strings.Join(plain, ","))
		if err != nil || !slices.Equal(again, as) {
			t.Fatalf("ParseIPs(%q) = %v, but its plain form parses to %v, %v", v, as, again, err)
		}
	})
}

// FuzzCompute decides for two pools of arbitrary ranges and Services with
// arbitrary requests and held addresses, applies the plan, decides again,
// and checks what must always hold: no address goes to two Services, every
// address is in a usable pool of its Service's families, and a second
// decision over the result moves no address.
func FuzzCompute(f *testing.F) {
	f.Add("2001:db8:5::/126", "192.0.2.0/30", "198.51.100.0/31", "192.0.2.1", "192.0.2.3,2001:db8:5::1", uint8(7), uint8(0x5a))
	f.Add("2001:db8::/64", "10.0.0.0/32", "10.0.0.0/31", "", "10.0.0.1", uint8(12), uint8(0xff))
	f.Fuzz(func(t *testing.T, a1, a2, b1, held, req string, n, bits uint8) {
		pools := []*v1alpha1.ServiceAddressPool{sap("a", 0, a1, a2), sap("b", 1, b1)}
		if bits&1 != 0 {
			manual(pools[1])
		}
		policies := []corev1.IPFamilyPolicy{single, prefer, require, ""}
		var svcs []Service
		for i := range int(n % 16) {
			s := svc(fmt.Sprintf("ns/s%02d", i), int(n)%(i+1), fams(policies[i%4], []corev1.IPFamily{v6, v4}[i%2], []corev1.IPFamily{v4, v6}[i%2]))
			if (bits>>(i%8))&1 != 0 {
				ips(req)(&s)
			}
			if i%3 == 0 {
				for _, h := range strings.Split(held, ",") {
					if a, err := netip.ParseAddr(h); err == nil {
						s.Ingress = append(s.Ingress, a)
					}
				}
			}
			if i%5 == 4 {
				inPool("b")(&s)
			}
			svcs = append(svcs, s)
		}
		p := Compute(Input{Pools: pools, Services: svcs, Now: epoch})
		checkDistinct(t, p)
		ps := parsePools(pools, nil, nil)
		for _, r := range p.Services {
			s := svcs[slices.IndexFunc(svcs, func(s Service) bool { return s.Name == r.Name })]
			for i, a := range r.Addrs {
				if !slices.Contains(s.families(), Family(a)) {
					t.Errorf("%s got %s, not of its families %v", r.Name, a, s.families())
				}
				j := slices.IndexFunc(ps, func(p *pool) bool { return p.name() == r.Pools[i] })
				if j < 0 || ps[j].problem != nil || !ps[j].contains(a) {
					t.Errorf("%s got %s of pool %s, which is not a usable pool holding it", r.Name, a, r.Pools[i])
				}
			}
		}
		applied := apply(svcs, p)
		first, _ := got(p)
		second, _ := got(Compute(Input{Pools: pools, Services: applied, Now: epoch}))
		for k, v := range first {
			if v != "" && second[k] != v {
				t.Errorf("%s had %s, the next decision gives %q", k, v, second[k])
			}
		}
	})
}
