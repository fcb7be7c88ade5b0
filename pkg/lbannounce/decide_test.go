package lbannounce

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/annotations"
	"github.com/fritzlab/flock/pkg/model"
)

var (
	addr = netip.MustParseAddr
	pfx  = netip.MustParsePrefix
)

func pools() []Pool {
	return []Pool{
		{Name: "web", CIDRs: []netip.Prefix{pfx("2001:db8:5::/112"), pfx("192.0.2.0/28")},
			Communities: []model.Community{{ASN: 65000, Value: 5}}, LargeCommunities: []model.LargeCommunity{{Global: 1, Data1: 2, Data2: 3}}},
		{Name: "plain", CIDRs: []netip.Prefix{pfx("198.51.100.0/28")}},
		// Younger, overlapping web's IPv4 range: web's communities win.
		{Name: "late", CIDRs: []netip.Prefix{pfx("192.0.2.0/24")}, Communities: []model.Community{{ASN: 65000, Value: 9}}},
	}
}

func svc(name string, local bool, ips ...string) Service {
	s := Service{Namespace: "demo", Name: name, LoadBalancer: true, Local: local}
	for _, ip := range ips {
		s.Ingress = append(s.Ingress, addr(ip))
	}
	return s
}

func TestDecide(t *testing.T) {
	reserved := []annotations.Reserved{
		{Prefix: pfx("2001:db8:5:0:1::/80"), What: "node a's pod pool"},
		{Prefix: pfx("10.96.0.0/12"), What: "the cluster's Service range"},
	}
	web := pools()[0]
	for _, tc := range []struct {
		name      string
		svcs      []Service
		eps       map[string]Endpoints
		notReady  bool
		want      []string // service addr announce reason
		wantRoute []Route
	}{{
		name: "Local with ready endpoints on this node, per family",
		svcs: []Service{svc("a", true, "2001:db8:5::10", "192.0.2.10")},
		eps:  map[string]Endpoints{"demo/a": {IPv6: Counts{Local: 2, Ready: 3}, IPv4: Counts{Ready: 1}}},
		want: []string{
			"demo/a 192.0.2.10 false Local: no ready endpoint on this node",
			"demo/a 2001:db8:5::10 true Local: 2 ready endpoints on this node",
		},
		wantRoute: []Route{{Addr: addr("2001:db8:5::10"), Communities: web.Communities, LargeCommunities: web.LargeCommunities}},
	}, {
		name: "Local without endpoints at all",
		svcs: []Service{svc("a", true, "2001:db8:5::10")},
		want: []string{"demo/a 2001:db8:5::10 false Local: no ready endpoint on this node"},
	}, {
		name:      "Cluster with a ready endpoint elsewhere",
		svcs:      []Service{svc("c", false, "198.51.100.1")},
		eps:       map[string]Endpoints{"demo/c": {IPv4: Counts{Ready: 1}}},
		want:      []string{"demo/c 198.51.100.1 true Cluster: 1 ready endpoint in the cluster, 0 on this node"},
		wantRoute: []Route{{Addr: addr("198.51.100.1")}},
	}, {
		name: "Cluster with no ready endpoint anywhere",
		svcs: []Service{svc("c", false, "198.51.100.1")},
		eps:  map[string]Endpoints{"demo/c": {IPv6: Counts{Ready: 4}}},
		want: []string{"demo/c 198.51.100.1 false Cluster: no ready endpoint in the cluster"},
	}, {
		name:     "Cluster on a node that is not ready",
		svcs:     []Service{svc("c", false, "198.51.100.1")},
		eps:      map[string]Endpoints{"demo/c": {IPv4: Counts{Local: 1, Ready: 1}}},
		notReady: true,
		want:     []string{"demo/c 198.51.100.1 false Cluster: this node is not ready"},
	}, {
		name:      "Local on a node that is not ready still announces (its endpoints say)",
		svcs:      []Service{svc("a", true, "198.51.100.1")},
		eps:       map[string]Endpoints{"demo/a": {IPv4: Counts{Local: 1, Ready: 1}}},
		notReady:  true,
		want:      []string{"demo/a 198.51.100.1 true Local: 1 ready endpoint on this node"},
		wantRoute: []Route{{Addr: addr("198.51.100.1")}},
	}, {
		name: "hostile or stale addresses are refused",
		svcs: []Service{svc("h", false, "203.0.113.7", "2001:db8:5:0:1::9", "10.96.0.10", "fe80::1", "::ffff:192.0.2.1")},
		eps:  map[string]Endpoints{"demo/h": {IPv6: Counts{Local: 1, Ready: 1}, IPv4: Counts{Local: 1, Ready: 1}}},
		want: []string{
			"demo/h 10.96.0.10 false refused: inside the cluster's Service range 10.96.0.0/12",
			"demo/h 203.0.113.7 false refused: outside every ServiceAddressPool",
			"demo/h ::ffff:192.0.2.1 false refused: not a global unicast address",
			"demo/h 2001:db8:5:0:1::9 false refused: inside node a's pod pool 2001:db8:5:0:1::/80",
			"demo/h fe80::1 false refused: not a global unicast address",
		},
	}, {
		name: "not ours: other class, other type",
		svcs: []Service{
			{Namespace: "demo", Name: "o", LoadBalancer: true, Class: "metallb.io/bgp", Ingress: []netip.Addr{addr("192.0.2.1")}},
			{Namespace: "demo", Name: "n", LoadBalancer: false, Ingress: []netip.Addr{addr("192.0.2.2")}},
			{Namespace: "demo", Name: "f", LoadBalancer: true, Class: v1alpha1.LoadBalancerClass, Ingress: []netip.Addr{addr("192.0.2.3")}},
		},
		eps:       map[string]Endpoints{"demo/o": {IPv4: Counts{Ready: 1}}, "demo/n": {IPv4: Counts{Ready: 1}}, "demo/f": {IPv4: Counts{Ready: 1}}},
		want:      []string{"demo/f 192.0.2.3 true Cluster: 1 ready endpoint in the cluster, 0 on this node"},
		wantRoute: []Route{{Addr: addr("192.0.2.3"), Communities: web.Communities, LargeCommunities: web.LargeCommunities}},
	}, {
		name: "a shared address is announced once; duplicates in ingress count once",
		svcs: []Service{svc("b", true, "198.51.100.2"), svc("a", false, "198.51.100.2", "198.51.100.2")},
		eps:  map[string]Endpoints{"demo/a": {IPv4: Counts{Ready: 2}}},
		want: []string{
			"demo/a 198.51.100.2 true Cluster: 2 ready endpoints in the cluster, 0 on this node",
			"demo/b 198.51.100.2 false Local: no ready endpoint on this node",
		},
		wantRoute: []Route{{Addr: addr("198.51.100.2")}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Services: tc.svcs, Endpoints: tc.eps, Pools: pools(), Reserved: reserved, NodeReady: !tc.notReady}
			ds, routes := Decide(in)
			var got []string
			for _, d := range ds {
				got = append(got, strings.Join([]string{d.Service, d.Addr.String(), map[bool]string{true: "true", false: "false"}[d.Announce], d.Reason}, " "))
				if d.Refused == (d.Pool != "") || d.Announce && d.Refused {
					t.Errorf("%+v: Refused and Pool disagree", d)
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("decisions (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantRoute, routes, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" && (len(tc.wantRoute) > 0 || len(routes) > 0) {
				t.Errorf("routes (-want +got):\n%s", d)
			}
			// The order of the Services and of their addresses does not matter.
			rev := slices.Clone(tc.svcs)
			slices.Reverse(rev)
			for i := range rev {
				rev[i].Ingress = slices.Clone(rev[i].Ingress)
				slices.Reverse(rev[i].Ingress)
			}
			in.Services = rev
			ds2, routes2 := Decide(in)
			if !slices.EqualFunc(ds, ds2, func(a, b Decision) bool { return a == b }) || !slices.EqualFunc(routes, routes2, Route.Equal) {
				t.Errorf("reordered input decides differently")
			}
		})
	}
}

func TestParsePool(t *testing.T) {
	p, err := ParsePool("web", []string{"2001:db8:5::/112", "192.0.2.0/28"}, []string{"65000:5"}, []string{"1:2:3"})
	if err != nil {
		t.Fatal(err)
	}
	want := Pool{Name: "web", CIDRs: []netip.Prefix{pfx("2001:db8:5::/112"), pfx("192.0.2.0/28")},
		Communities: []model.Community{{ASN: 65000, Value: 5}}, LargeCommunities: []model.LargeCommunity{{Global: 1, Data1: 2, Data2: 3}}}
	if d := cmp.Diff(want, p, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("ParsePool (-want +got):\n%s", d)
	}
	for _, tc := range []struct {
		cidrs, comms, large []string
		want                string
	}{
		{nil, nil, nil, `serviceaddresspool web: spec.cidrs: empty`},
		{[]string{"192.0.2.1/24"}, nil, nil, `spec.cidrs[0] "192.0.2.1/24": host bits set (the network is 192.0.2.0/24)`},
		{[]string{"192.0.2.0/24", "nope"}, nil, nil, `spec.cidrs[1] "nope": not a CIDR`},
		{[]string{"fe80::/64"}, nil, nil, `spec.cidrs[0] "fe80::/64": not a unicast range`},
		{[]string{"::ffff:192.0.2.0/120"}, nil, nil, `spec.cidrs[0] "::ffff:192.0.2.0/120": must be a plain IPv6 or IPv4 CIDR`},
		{[]string{"192.0.2.0/24"}, []string{"65536:1"}, nil, `spec.communities[0] "65536:1": must be ASN:value`},
		{[]string{"192.0.2.0/24"}, nil, []string{"1:2"}, `spec.largeCommunities[0] "1:2": must be global:data1:data2`},
		{[]string{"192.0.2.0/24"}, []string{"1:1", "1:1"}, nil, `spec.communities[1] "1:1": listed twice`},
	} {
		_, err := ParsePool("web", tc.cidrs, tc.comms, tc.large)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePool(%q, %q, %q) = %v, want an error containing %q", tc.cidrs, tc.comms, tc.large, err, tc.want)
		}
	}
}

// FuzzParsePool: any spec parses or fails without panicking, and a pool
// that parses holds only masked unicast ranges that Decide can use.
func FuzzParsePool(f *testing.F) {
	f.Add("2001:db8:5::/112,192.0.2.0/28", "65000:5", "1:2:3", "2001:db8:5::1")
	f.Add("192.0.2.1/24", "65536:1", "1:2", "192.0.2.1")
	f.Add(",::/0", "0:0,", "4294967295:0:4294967296", "::")
	f.Fuzz(func(t *testing.T, cidrs, comms, large, ip string) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		p, err := ParsePool("fuzz", split(cidrs), split(comms), split(large))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "serviceaddresspool fuzz: spec.") {
				t.Fatalf("error %q does not name the pool and field", err)
			}
			return
		}
		for _, c := range p.CIDRs {
			if c != c.Masked() || !c.Addr().IsGlobalUnicast() || c.Addr().Is4In6() {
				t.Fatalf("ParsePool accepted %v", c)
			}
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return
		}
		ds, routes := Decide(Input{Services: []Service{{Namespace: "n", Name: "s", LoadBalancer: true, Ingress: []netip.Addr{a}}},
			Endpoints: map[string]Endpoints{"n/s": {IPv6: Counts{Ready: 1}, IPv4: Counts{Ready: 1}}}, Pools: []Pool{p}, NodeReady: true})
		if len(ds) != 1 || len(routes) > 1 || (len(routes) == 1) != ds[0].Announce {
			t.Fatalf("Decide = %+v, %+v", ds, routes)
		}
		if ds[0].Announce && (!a.IsGlobalUnicast() || a.Zone() != "" || a.Is4In6()) {
			t.Fatalf("announced %v", a)
		}
	})
}
