package chaos

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fritzlab/flock/pkg/store"
)

var (
	a6 = netip.MustParseAddr("2001:db8:1::5")
	a4 = netip.MustParseAddr("10.1.0.5")
	b6 = netip.MustParseAddr("2001:db8:1::6")
	b4 = netip.MustParseAddr("10.1.0.6")
	c6 = netip.MustParseAddr("2001:db8:ffff::c")
	c4 = netip.MustParseAddr("192.0.2.12")

	pool6 = netip.MustParsePrefix("2001:db8:1::/64")
	pool4 = netip.MustParsePrefix("10.1.0.0/24")
)

// clean is a node with two pods: a (Ready, serving two anycast addresses,
// under a default-deny ingress policy) and b (not Ready).
func clean() (nodeState, []livePod) {
	pods := []livePod{
		{Key: "ns/a", V6: a6, V4: a4, Ready: true, Restricted: [2]restriction{{Selected: true, DenyAll: true}, {}}},
		{Key: "ns/b", V6: b6, V4: b4},
	}
	st := nodeState{
		Allocations: map[string]store.Record{
			"ca-eth0.json": {Namespace: "ns", Name: "a", HostIface: "flock0000000a", IPv6: a6, IPv4: a4, Anycast: []netip.Addr{c6, c4}, Pool6: pool6, Pool4: pool4},
			"cb-eth0.json": {Namespace: "ns", Name: "b", HostIface: "flock0000000b", IPv6: b6, IPv4: b4, Pool6: pool6, Pool4: pool4},
		},
		Veths: []string{"flock0000000a", "flock0000000b"},
		HostRoutes: []route{
			{a6, []hop{{Dev: "flock0000000a"}}}, {a4, []hop{{Dev: "flock0000000a"}}},
			{b6, []hop{{Dev: "flock0000000b"}}}, {b4, []hop{{Dev: "flock0000000b"}}},
		},
		AnycastRoutes: []route{{c6, []hop{{a6, "flock0000000a"}}}, {c4, []hop{{a4, "flock0000000a"}}}},
		Guard: []guardEntry{
			{"flock0000000a", a6}, {"flock0000000a", a4}, {"flock0000000a", c6}, {"flock0000000a", c4},
			{"flock0000000b", b6}, {"flock0000000b", b4},
		},
		PolicyTable: true,
		Policy: []policyElem{
			{Where: ingressMap, Iface: "flock0000000a", Comment: "ns/a"},
			{Where: hairpinSet, Iface: "flock0000000a"},
			{Where: "ingress_drops", Iface: "flock0000000a"},
			{Where: "counter drop_in_", Iface: "flock0000000a"},
		},
		Pools:   []netip.Prefix{pool6, pool4},
		Learned: []netip.Prefix{pool6, pool4, netip.PrefixFrom(c6, 128), netip.PrefixFrom(c4, 32)},
	}
	return st, pods
}

func TestLedgerClean(t *testing.T) {
	st, pods := clean()
	l := st.audit("node-1", pods)
	if l.leaked != 0 || len(l.problems) != 0 {
		t.Fatalf("a clean node: leaked %d, problems %q", l.leaked, l.problems)
	}
	want := map[string]int{"allocation": 2, "host veth": 2, "host route (proto 83)": 4, "anycast route (proto 84)": 2,
		"anti-spoofing entry": 6, "policy element": 4, "router prefix": 4}
	if d := cmp.Diff(want, l.checked); d != "" {
		t.Errorf("checked (-want +got):\n%s", d)
	}
}

// Each stray object is a leak that names it; each missing one a failure.
func TestLedgerNamesLeaks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*nodeState, *[]livePod)
		leaked int
		want   []string
	}{
		{"allocation of a deleted pod", func(st *nodeState, _ *[]livePod) {
			st.Allocations["cg-eth0.json"] = store.Record{Namespace: "ns", Name: "gone", HostIface: "flock0000000f", IPv6: netip.MustParseAddr("2001:db8:1::9")}
		}, 1, []string{"node-1: allocation cg-eth0.json (ns/gone, 2001:db8:1::9 invalid IP) belongs to no live pod"}},
		{"stray veth", func(st *nodeState, _ *[]livePod) { st.Veths = append(st.Veths, "flock0000000f") },
			1, []string{"node-1: host veth flock0000000f belongs to no live pod"}},
		{"stray host route", func(st *nodeState, _ *[]livePod) {
			st.HostRoutes = append(st.HostRoutes, route{netip.MustParseAddr("10.1.0.9"), []hop{{Dev: "flock0000000f"}}})
		}, 1, []string{"node-1: host route (proto 83) 10.1.0.9 dev flock0000000f belongs to no live pod"}},
		{"anycast route of a pod not Ready", func(st *nodeState, _ *[]livePod) {
			st.AnycastRoutes = append(st.AnycastRoutes, route{netip.MustParseAddr("192.0.2.99"), []hop{{b4, "flock0000000b"}}})
		}, 1, []string{"node-1: anycast route (proto 84) 192.0.2.99 belongs to no live pod"}},
		{"anycast route with a stale next hop", func(st *nodeState, _ *[]livePod) {
			st.AnycastRoutes[1].Hops = append(st.AnycastRoutes[1].Hops, hop{netip.MustParseAddr("10.1.0.9"), "flock0000000f"})
		}, 1, []string{"node-1: anycast route (proto 84) 192.0.2.12 via 10.1.0.5 dev flock0000000a via 10.1.0.9 dev flock0000000f, want 192.0.2.12 via 10.1.0.5 dev flock0000000a"}},
		{"guard entry of a deleted pod", func(st *nodeState, _ *[]livePod) {
			st.Guard = append(st.Guard, guardEntry{"flock0000000f", netip.MustParseAddr("10.1.0.9")})
		}, 1, []string{"node-1: anti-spoofing entry flock0000000f . 10.1.0.9 belongs to no live pod"}},
		{"policy element of a deleted pod", func(st *nodeState, _ *[]livePod) {
			st.Policy = append(st.Policy, policyElem{Where: egressMap, Iface: "flock0000000f", Comment: "ns/gone"})
		}, 1, []string{"node-1: policy table egress_by_iface element flock0000000f belongs to no live pod"}},
		{"policy that outlived its NetworkPolicy", func(st *nodeState, p *[]livePod) {
			(*p)[0].Restricted = [2]restriction{}
		}, 1, []string{"node-1: policy table ingress_by_iface restricts ns/a (flock0000000a), which no ingress policy selects"}},
		{"policy element naming another pod", func(st *nodeState, _ *[]livePod) { st.Policy[0].Comment = "ns/b" },
			1, []string{"node-1: policy table ingress_by_iface element flock0000000a names ns/b, the veth is ns/a's"}},
		{"default-deny not enforced", func(st *nodeState, _ *[]livePod) { st.Policy = nil }, 0, []string{
			"node-1: policy table ingress_by_iface lacks ns/a (flock0000000a), which a policy allowing nothing selects",
		}},
		{"companions of a verdict map missing", func(st *nodeState, _ *[]livePod) { st.Policy = st.Policy[:1] }, 0, []string{
			"node-1: policy table hairpin lacks flock0000000a (ns/a)",
			"node-1: policy table ingress_drops lacks flock0000000a (ns/a)",
			"node-1: policy table counter drop_in_ lacks flock0000000a (ns/a)",
		}},
		{"drop counter left behind", func(st *nodeState, _ *[]livePod) {
			st.Policy = append(st.Policy, policyElem{Where: "counter drop_out_", Iface: "flock0000000b"})
		}, 1, []string{"node-1: policy table counter drop_out_ holds flock0000000b (ns/b), which neither verdict map does"}},
		{"pod without its objects", func(st *nodeState, _ *[]livePod) {
			delete(st.Allocations, "cb-eth0.json")
		}, 5, []string{
			"node-1: pod ns/b (2001:db8:1::6 10.1.0.6) has no allocation on disk",
			"node-1: host veth flock0000000b belongs to no live pod",
			"node-1: host route (proto 83) 10.1.0.6 dev flock0000000b belongs to no live pod",
			"node-1: host route (proto 83) 2001:db8:1::6 dev flock0000000b belongs to no live pod",
			"node-1: anti-spoofing entry flock0000000b . 2001:db8:1::6 belongs to no live pod",
			"node-1: anti-spoofing entry flock0000000b . 10.1.0.6 belongs to no live pod",
		}},
		{"allocation of a re-created pod", func(st *nodeState, p *[]livePod) { (*p)[1].V4 = netip.MustParseAddr("10.1.0.7") },
			// Everything of the old allocation is a leak.
			6, []string{
				"node-1: allocation cb-eth0.json gives ns/b 2001:db8:1::6 10.1.0.6, the API says 2001:db8:1::6 10.1.0.7",
				"node-1: pod ns/b (2001:db8:1::6 10.1.0.7) has no allocation on disk",
				"node-1: host veth flock0000000b belongs to no live pod",
				"node-1: host route (proto 83) 2001:db8:1::6 dev flock0000000b belongs to no live pod",
				"node-1: host route (proto 83) 10.1.0.6 dev flock0000000b belongs to no live pod",
				"node-1: anti-spoofing entry flock0000000b . 2001:db8:1::6 belongs to no live pod",
				"node-1: anti-spoofing entry flock0000000b . 10.1.0.6 belongs to no live pod",
			}},
		{"router learned a withdrawn anycast address", func(st *nodeState, _ *[]livePod) {
			st.Learned = append(st.Learned, netip.MustParsePrefix("192.0.2.99/32"))
		}, 1, []string{"node-1: the router learned 192.0.2.99/32 from it, which is neither a pool nor a Ready anycast address"}},
		{"router lacks a pool", func(st *nodeState, _ *[]livePod) { st.Learned = st.Learned[1:] },
			0, []string{"node-1: the router lacks 2001:db8:1::/64 (its pool)"}},
		{"duplicate veth", func(st *nodeState, _ *[]livePod) { st.Veths = append(st.Veths, "flock0000000b") },
			1, []string{"node-1: host veth flock0000000b of ns/b is there twice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, pods := clean()
			tc.change(&st, &pods)
			l := st.audit("node-1", pods)
			if l.leaked != tc.leaked {
				t.Errorf("leaked %d, want %d", l.leaked, tc.leaked)
			}
			got, want := slices.Sorted(slices.Values(l.problems)), slices.Sorted(slices.Values(tc.want))
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseRoutes(t *testing.T) {
	v4 := `[{"dst":"10.9.0.5","dev":"flockaaaa0001","scope":"link","flags":[]},{"type":"blackhole","dst":"10.9.8.0/24","flags":[]},` +
		`{"dst":"192.0.2.7","flags":[],"nexthops":[{"gateway":"10.9.0.5","dev":"p1","weight":1,"flags":[]},{"gateway":"10.9.1.5","dev":"p2","weight":1,"flags":[]}]},` +
		`{"dst":"192.0.2.8","gateway":"10.9.0.6","dev":"p1","flags":[]}]`
	got, err := parseRoutes([]byte(v4))
	if err != nil {
		t.Fatal(err)
	}
	want := []route{
		{netip.MustParseAddr("10.9.0.5"), []hop{{Dev: "flockaaaa0001"}}},
		{netip.MustParseAddr("192.0.2.7"), []hop{{netip.MustParseAddr("10.9.0.5"), "p1"}, {netip.MustParseAddr("10.9.1.5"), "p2"}}},
		{netip.MustParseAddr("192.0.2.8"), []hop{{netip.MustParseAddr("10.9.0.6"), "p1"}}},
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("routes (-want +got):\n%s", d)
	}
	for _, empty := range []string{"", "[]", "\n"} {
		if got, err := parseRoutes([]byte(empty)); err != nil || len(got) != 0 {
			t.Errorf("parseRoutes(%q) = %v, %v", empty, got, err)
		}
	}
	if _, err := parseRoutes([]byte(`[{"dst":"10.0.0.0/8","dev":"flockaaaa0001"}]`)); err == nil || !strings.Contains(err.Error(), "10.0.0.0/8 is not a host route") {
		t.Errorf("a prefix route: %v", err)
	}
	if _, err := parseRoutes([]byte(`[{"dst":"10.0.0.1","gateway":"nope"}]`)); err == nil || !strings.Contains(err.Error(), `gateway "nope"`) {
		t.Errorf("a bad gateway: %v", err)
	}
}

func TestParseLearned(t *testing.T) {
	b := `[{"dst":"2001:db8:1::/64","gateway":"2001:db8:0:1::2","dev":"r1","protocol":"bird"},` +
		`{"dst":"2001:db8:2::/64","gateway":"2001:db8:0:2::2","dev":"r2"},` +
		`{"dst":"2001:db8:ffff::c","nexthops":[{"gateway":"2001:db8:0:2::2"},{"gateway":"2001:db8:0:1::2"}]}]`
	got, err := parseLearned([]byte(b), netip.MustParseAddr("2001:db8:0:1::2"), netip.MustParseAddr("10.0.1.2"))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/64"), netip.MustParsePrefix("2001:db8:ffff::c/128")}
	if !slices.Equal(got, want) {
		t.Errorf("learned %v, want %v", got, want)
	}
}

func TestParseLinks(t *testing.T) {
	got, err := parseLinks([]byte(`[{"ifindex":2,"link":"flockaaaa0001","ifname":"p1"},{"ifindex":3,"link":"p1","ifname":"flockaaaa0001"}]`))
	if err != nil || !slices.Equal(got, []string{"flockaaaa0001"}) {
		t.Errorf("links %v, %v", got, err)
	}
}

// nftPolicy is `nft -j list table inet flock` of a table with one pod
// under ingress policy (trimmed to what the parser reads and skips).
const nftPolicy = `{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "inet", "name": "flock"}},
{"counter": {"family": "inet", "name": "drop_in_flockabc", "table": "flock", "packets": 0, "bytes": 0}},
{"map": {"family": "inet", "name": "ingress_by_iface", "table": "flock", "type": "ifname", "map": "verdict",
  "elem": [[{"elem": {"val": "flockabc", "comment": "chaos/a"}}, {"jump": {"target": "ingress_deny"}}]]}},
{"map": {"family": "inet", "name": "egress_by_iface", "table": "flock", "type": "ifname", "map": "verdict"}},
{"set": {"family": "inet", "name": "hairpin", "table": "flock", "type": ["ifname", "ifname"], "elem": [{"concat": ["flockabc", "flockabc"]}]}},
{"map": {"family": "inet", "name": "ingress_drops", "table": "flock", "type": "ifname", "map": "counter", "elem": [["flockabc", "drop_in_flockabc"]]}},
{"set": {"family": "inet", "name": "ingress_0123_any6", "table": "flock", "type": "ipv6_addr", "flags": ["interval"], "elem": [{"prefix": {"addr": "2001:db8::", "len": 32}}]}},
{"chain": {"family": "inet", "table": "flock", "name": "ingress_deny"}}]}`

func TestParsePolicy(t *testing.T) {
	got, err := parsePolicy([]byte(nftPolicy))
	if err != nil {
		t.Fatal(err)
	}
	want := []policyElem{
		{Where: "counter drop_in_", Iface: "flockabc"},
		{Where: ingressMap, Iface: "flockabc", Comment: "chaos/a"},
		{Where: hairpinSet, Iface: "flockabc"},
		{Where: "ingress_drops", Iface: "flockabc"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("elements (-want +got):\n%s", d)
	}
	if _, err := parsePolicy([]byte(`{"nftables":[{"set":{"name":"hairpin","elem":[{"concat":["flocka","flockb"]}]}}]}`)); err == nil {
		t.Error("a hairpin element of two veths: no error")
	}
}

func TestParseGuard(t *testing.T) {
	b := `{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet", "name": "sources6", "table": "flock_guard", "type": ["ifname", "ipv6_addr"],
	"elem": [{"concat": ["flockabc", "2001:db8::5"]}]}}, {"set": {"name": "sources4", "elem": [{"concat": ["flockabc", "10.0.0.5"]}]}},
	{"counter": {"name": "spoofed", "packets": 3}}]}`
	got, err := parseGuard([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	want := []guardEntry{{"flockabc", netip.MustParseAddr("2001:db8::5")}, {"flockabc", netip.MustParseAddr("10.0.0.5")}}
	if !slices.Equal(got, want) {
		t.Errorf("guard %v, want %v", got, want)
	}
	if _, err := parseGuard([]byte(`{"nftables":[{"set":{"name":"sources4","elem":[{"concat":["flockabc","nope"]}]}}]}`)); err == nil {
		t.Error("a bad address: no error")
	}
}

// FuzzParseListings: the audit's parsers of `ip -j` and `nft -j` output
// never panic, whatever they are given.
func FuzzParseListings(f *testing.F) {
	f.Add([]byte(nftPolicy))
	f.Add([]byte(`[{"dst":"192.0.2.7","nexthops":[{"gateway":"10.9.0.5","dev":"p1"}]}]`))
	f.Add([]byte(`{"nftables":[{"set":{"name":"sources6","elem":[{"elem":{"val":{"concat":["flocka","::1"]}}}]}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseRoutes(b)
		parseLearned(b, netip.MustParseAddr("10.9.0.5"))
		parseLinks(b)
		parseGuard(b)
		parsePolicy(b)
	})
}
