package chaos

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/store"
)

// The leak audit's pure half: what one node holds (read from its disk,
// kernel and the router by audit.go) set against what the API says lives
// there. Every object of flock's on the node must belong to a live pod —
// an allocation file, a host veth, a host route (proto 83), an anycast
// route (proto 84), an anti-spoofing entry, an element of the
// NetworkPolicy table — and every live pod must have each of its own; a
// stray object is a leak and is named, a missing one is a failure.

// livePod is a pod of the node as the API has it: addresses assigned, not
// being deleted.
type livePod struct {
	Key        string // namespace/name
	V6, V4     netip.Addr
	Ready      bool
	Restricted [2]restriction // [0] ingress, [1] egress
}

// restriction is what the NetworkPolicies selecting a pod say about one
// direction: whether any selects it, and whether all that do allow nothing
// (no rules), in which case the policy table must hold a drop for it.
type restriction struct{ Selected, DenyAll bool }

// route is a flock route in the node's namespace: proto 83 host routes
// have one hop without a gateway, proto 84 anycast routes one or more
// hops via a pod address.
type route struct {
	Dst  netip.Addr
	Hops []hop
}

type hop struct {
	Via netip.Addr // zero for a host route
	Dev string
}

func (r route) String() string {
	s := r.Dst.String()
	for _, h := range r.Hops {
		if h.Via.IsValid() {
			s += " via " + h.Via.String()
		}
		s += " dev " + h.Dev
	}
	return s
}

// policyElem is one element of flock's NetworkPolicy table that names a
// pod's host veth.
type policyElem struct {
	Where   string // the set, map or "counter"
	Iface   string
	Comment string // the pod the verdict maps name, "" elsewhere
}

// nodeState is everything of flock's found on one node.
type nodeState struct {
	Allocations   map[string]store.Record // by file name
	Veths         []string
	HostRoutes    []route
	AnycastRoutes []route
	Guard         []guardEntry
	// PolicyTable is false when the table could not be listed (no pod
	// restricted yet on a fresh node is the same as an empty table).
	PolicyTable bool
	Policy      []policyElem
	// Learned are the prefixes the router has via the node's addresses;
	// Pools the pools its NodeConfig has now.
	Learned []netip.Prefix
	Pools   []netip.Prefix
}

type guardEntry struct {
	Iface string
	Addr  netip.Addr
}

// ledger is one node's audit outcome.
type ledger struct {
	leaked   int
	problems []string
	// checked counts the objects found, by kind.
	checked map[string]int
}

func (l *ledger) check(kind string, n int) {
	if l.checked == nil {
		l.checked = map[string]int{}
	}
	l.checked[kind] += n
}

func (l *ledger) leak(format string, args ...any) {
	l.leaked++
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

func (l *ledger) fail(format string, args ...any) {
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

// tally matches observed objects against the expected ones by key, as
// multisets: an observed key not expected, or seen more often, is a leak
// (named with the label of the observed object); an expected key not
// observed is missing.
func tally[K comparable](l *ledger, node, kind string, want map[K]string, got []K, name func(K) string) {
	l.check(kind, len(got))
	seen := map[K]int{}
	for _, k := range got {
		seen[k]++
		switch owner, ok := want[k]; {
		case !ok:
			l.leak("%s: %s %s belongs to no live pod", node, kind, name(k))
		case seen[k] > 1:
			l.leak("%s: %s %s of %s is there twice", node, kind, name(k), owner)
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(want), func(a, b K) int { return strings.Compare(name(a), name(b)) }) {
		if seen[k] == 0 {
			l.fail("%s: %s %s of %s is missing", node, kind, name(k), want[k])
		}
	}
}

// audit compares a node's state with its live pods.
func (st nodeState) audit(node string, pods []livePod) ledger {
	var l ledger
	byKey := map[string]livePod{}
	for _, p := range pods {
		byKey[p.Key] = p
	}
	// Allocations: one per live pod, with the pod's addresses. Those that
	// match are the owners of everything else.
	var live []store.Record
	has := map[string]string{}
	l.check("allocation", len(st.Allocations))
	l.check("policy element", len(st.Policy))
	l.check("router prefix", len(st.Learned))
	for _, file := range slices.Sorted(maps.Keys(st.Allocations)) {
		r := st.Allocations[file]
		key := r.Namespace + "/" + r.Name
		p, ok := byKey[key]
		switch {
		case !ok:
			l.leak("%s: allocation %s (%s, %s %s) belongs to no live pod", node, file, key, r.IPv6, r.IPv4)
			continue
		case r.IPv6 != p.V6 || r.IPv4 != p.V4:
			l.leak("%s: allocation %s gives %s %s %s, the API says %s %s", node, file, key, r.IPv6, r.IPv4, p.V6, p.V4)
			continue
		case has[key] != "":
			l.leak("%s: allocation %s of %s is a second one (first %s)", node, file, key, has[key])
			continue
		}
		has[key] = file
		live = append(live, r)
	}
	for _, p := range pods {
		if has[p.Key] == "" {
			l.fail("%s: pod %s (%s %s) has no allocation on disk", node, p.Key, p.V6, p.V4)
		}
	}

	veths := map[string]string{}
	hosts := map[hostKey]string{}
	guard := map[guardEntry]string{}
	anycast := map[netip.Addr][]hop{}
	for _, r := range live {
		key := r.Namespace + "/" + r.Name
		veths[r.HostIface] = key
		for _, a := range []netip.Addr{r.IPv6, r.IPv4} {
			if a.IsValid() {
				hosts[hostKey{a, r.HostIface}] = key
				guard[guardEntry{r.HostIface, a}] = key
			}
		}
		for _, a := range r.Anycast {
			guard[guardEntry{r.HostIface, a}] = key
			via := r.IPv6
			if a.Is4() {
				via = r.IPv4
			}
			if byKey[key].Ready && via.IsValid() {
				anycast[a] = append(anycast[a], hop{via, r.HostIface})
			}
		}
	}
	tally(&l, node, "host veth", veths, st.Veths, func(s string) string { return s })
	var gotHosts []hostKey
	for _, r := range st.HostRoutes {
		if len(r.Hops) != 1 || r.Hops[0].Via.IsValid() {
			l.leak("%s: proto 83 route %s is not a host route flock makes", node, r)
			continue
		}
		gotHosts = append(gotHosts, hostKey{r.Dst, r.Hops[0].Dev})
	}
	tally(&l, node, "host route (proto 83)", hosts, gotHosts, func(k hostKey) string { return k.Dst.String() + " dev " + k.Dev })
	tally(&l, node, "anti-spoofing entry", guard, st.Guard, func(g guardEntry) string { return g.Iface + " . " + g.Addr.String() })

	// Anycast routes: one per address a Ready pod serves, its next hops
	// exactly those pods'.
	wantAny := map[netip.Addr]string{}
	for a, hops := range anycast {
		wantAny[a] = route{Dst: a, Hops: sortHops(hops)}.String()
	}
	var gotAny []netip.Addr
	for _, r := range st.AnycastRoutes {
		gotAny = append(gotAny, r.Dst)
		if want, ok := wantAny[r.Dst]; ok && (route{Dst: r.Dst, Hops: sortHops(r.Hops)}).String() != want {
			l.leak("%s: anycast route (proto 84) %s, want %s", node, r, want)
		}
	}
	tally(&l, node, "anycast route (proto 84)", wantAny, gotAny, netip.Addr.String)

	l.policy(node, st, live, byKey)
	l.learned(node, st, live, wantAny)
	return l
}

// hostKey is a host route (proto 83): a pod address on its host veth.
type hostKey struct {
	Dst netip.Addr
	Dev string
}

func sortHops(h []hop) []hop {
	h = slices.Clone(h)
	slices.SortFunc(h, func(a, b hop) int {
		if c := a.Via.Compare(b.Via); c != 0 {
			return c
		}
		return strings.Compare(a.Dev, b.Dev)
	})
	return slices.Compact(h)
}

// policy checks the NetworkPolicy table: every element names the host
// veth of a live pod (and the verdict maps that pod); a pod selected only
// by policies that allow nothing in a direction has its drop there; the
// hairpin set and the drop-counter maps hold exactly the pods of the two
// verdict maps.
func (l *ledger) policy(node string, st nodeState, live []store.Record, pods map[string]livePod) {
	owner := map[string]string{}
	for _, r := range live {
		owner[r.HostIface] = r.Namespace + "/" + r.Name
	}
	in := map[string]bool{}
	out := map[string]bool{}
	where := map[string]map[string]int{}
	for _, e := range st.Policy {
		pod, ok := owner[e.Iface]
		switch {
		case !ok:
			l.leak("%s: policy table %s element %s belongs to no live pod", node, e.Where, e.Iface)
			continue
		case e.Comment != "" && e.Comment != pod[:min(len(pod), 127)]: // nft comments stop at 127 bytes
			l.leak("%s: policy table %s element %s names %s, the veth is %s's", node, e.Where, e.Iface, e.Comment, pod)
		}
		if where[e.Where] == nil {
			where[e.Where] = map[string]int{}
		}
		if where[e.Where][e.Iface]++; where[e.Where][e.Iface] > 1 {
			l.leak("%s: policy table %s element %s of %s is there twice", node, e.Where, e.Iface, pod)
		}
		p := pods[pod]
		switch e.Where {
		case ingressMap:
			in[e.Iface] = true
			if !p.Restricted[0].Selected {
				l.leak("%s: policy table %s restricts %s (%s), which no ingress policy selects", node, e.Where, pod, e.Iface)
			}
		case egressMap:
			out[e.Iface] = true
			if !p.Restricted[1].Selected {
				l.leak("%s: policy table %s restricts %s (%s), which no egress policy selects", node, e.Where, pod, e.Iface)
			}
		}
	}
	for _, r := range live {
		p := pods[r.Namespace+"/"+r.Name]
		for dir, m := range []map[string]bool{in, out} {
			if p.Restricted[dir].DenyAll && !m[r.HostIface] {
				l.fail("%s: policy table %s lacks %s (%s), which a policy allowing nothing selects", node, []string{ingressMap, egressMap}[dir], p.Key, r.HostIface)
			}
		}
	}
	if !st.PolicyTable {
		return
	}
	// The companions of the verdict maps.
	both := map[string]bool{}
	for i := range in {
		both[i] = true
	}
	for i := range out {
		both[i] = true
	}
	for _, c := range []struct {
		where string
		want  map[string]bool
	}{
		{hairpinSet, both},
		{"ingress_drops", in}, {"egress_drops", out},
		{"counter " + policy.DropCounterIngress, in}, {"counter " + policy.DropCounterEgress, out},
	} {
		for _, i := range slices.Sorted(maps.Keys(c.want)) {
			if where[c.where][i] == 0 {
				l.fail("%s: policy table %s lacks %s (%s)", node, c.where, i, owner[i])
			}
		}
		for _, i := range slices.Sorted(maps.Keys(where[c.where])) {
			if !c.want[i] && owner[i] != "" {
				l.leak("%s: policy table %s holds %s (%s), which neither verdict map does", node, c.where, i, owner[i])
			}
		}
	}
}

// The verdict maps and the hairpin set of pkg/policy's table.
const (
	ingressMap = "ingress_by_iface"
	egressMap  = "egress_by_iface"
	hairpinSet = "hairpin"
)

// learned checks that the router has from the node exactly its pools (the
// NodeConfig's, and any older pool that still holds a live pod) and the
// anycast addresses of its Ready pods.
func (l *ledger) learned(node string, st nodeState, live []store.Record, anycast map[netip.Addr]string) {
	want := map[netip.Prefix]string{}
	for _, p := range st.Pools {
		want[p.Masked()] = "its pool"
	}
	for _, r := range live {
		for _, p := range []netip.Prefix{r.Pool6, r.Pool4} {
			if p.IsValid() && want[p.Masked()] == "" {
				want[p.Masked()] = "the pool of " + r.Namespace + "/" + r.Name
			}
		}
	}
	for a, rt := range anycast {
		want[netip.PrefixFrom(a, a.BitLen())] = "anycast " + rt
	}
	seen := map[netip.Prefix]bool{}
	for _, p := range st.Learned {
		seen[p] = true
		if _, ok := want[p]; !ok {
			l.leak("%s: the router learned %s from it, which is neither a pool nor a Ready anycast address", node, p)
		}
	}
	for _, p := range slices.SortedFunc(maps.Keys(want), comparePrefix) {
		if !seen[p] {
			l.fail("%s: the router lacks %s (%s)", node, p, want[p])
		}
	}
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// The kernel's listings, as `ip -j` and `nft -j` print them.

// parseLinks reads `ip -j link show type veth` and returns the host veths
// of flock's (flock<8 hex>).
func parseLinks(b []byte) ([]string, error) {
	var links []struct {
		Name string `json:"ifname"`
	}
	if err := unmarshalList(b, &links); err != nil {
		return nil, fmt.Errorf("parse ip -j link: %w", err)
	}
	var out []string
	for _, l := range links {
		if strings.HasPrefix(l.Name, "flock") {
			out = append(out, l.Name)
		}
	}
	return out, nil
}

// parseRoutes reads `ip -j route show proto N` (one family). Blackhole and
// other non-unicast routes are left out: flock's pool blackholes carry
// proto 83 too and are not pods' routes.
func parseRoutes(b []byte) ([]route, error) {
	var routes []struct {
		Type     string `json:"type"`
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Dev      string `json:"dev"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
			Dev     string `json:"dev"`
		} `json:"nexthops"`
	}
	if err := unmarshalList(b, &routes); err != nil {
		return nil, fmt.Errorf("parse ip -j route: %w", err)
	}
	var out []route
	for _, r := range routes {
		if r.Type != "" && r.Type != "unicast" {
			continue
		}
		dst, err := parseDst(r.Dst)
		if err != nil {
			return nil, fmt.Errorf("parse ip -j route: %w", err)
		}
		rt := route{Dst: dst.Addr()}
		if dst.Bits() != dst.Addr().BitLen() {
			return nil, fmt.Errorf("parse ip -j route: %s is not a host route", r.Dst)
		}
		add := func(gw, dev string) error {
			h := hop{Dev: dev}
			if gw != "" {
				a, err := netip.ParseAddr(gw)
				if err != nil {
					return fmt.Errorf("parse ip -j route %s: gateway %q: %w", r.Dst, gw, err)
				}
				h.Via = a
			}
			rt.Hops = append(rt.Hops, h)
			return nil
		}
		if len(r.Nexthops) == 0 {
			if err := add(r.Gateway, r.Dev); err != nil {
				return nil, err
			}
		}
		for _, n := range r.Nexthops {
			if err := add(n.Gateway, n.Dev); err != nil {
				return nil, err
			}
		}
		out = append(out, rt)
	}
	return out, nil
}

// parseLearned reads `ip -j route show proto bird` (one family) at the
// router and returns the prefixes with a next hop via one of addrs.
func parseLearned(b []byte, addrs ...netip.Addr) ([]netip.Prefix, error) {
	var routes []struct {
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := unmarshalList(b, &routes); err != nil {
		return nil, fmt.Errorf("parse ip -j route: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		gws := []string{r.Gateway}
		for _, n := range r.Nexthops {
			gws = append(gws, n.Gateway)
		}
		for _, gw := range gws {
			a, err := netip.ParseAddr(gw)
			if err != nil || !slices.Contains(addrs, a) {
				continue
			}
			dst, err := parseDst(r.Dst)
			if err != nil {
				return nil, fmt.Errorf("parse ip -j route: %w", err)
			}
			out = append(out, dst)
			break
		}
	}
	return out, nil
}

// parseDst reads a route's dst: a prefix, or an address for a host route.
func parseDst(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("dst %q: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("dst %q: %w", s, err)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// unmarshalList reads a JSON list; iproute2 prints nothing at all for an
// empty listing in some versions.
func unmarshalList(b []byte, v any) error {
	if strings.TrimSpace(string(b)) == "" {
		return nil
	}
	return json.Unmarshal(b, v)
}

// nftDoc is `nft -j list …`: objects of which sets, maps and counters are
// read.
type nftDoc struct {
	Nftables []struct {
		Set     *nftSet `json:"set"`
		Map     *nftSet `json:"map"`
		Counter *struct {
			Name string `json:"name"`
		} `json:"counter"`
	} `json:"nftables"`
}

type nftSet struct {
	Name string            `json:"name"`
	Elem []json.RawMessage `json:"elem"`
}

// parseGuard reads `nft -j list table inet flock_guard`: the entries of
// its two sets, (host veth . address).
func parseGuard(b []byte) ([]guardEntry, error) {
	var doc nftDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse nft -j list table %s %s: %w", policy.GuardFamily, policy.GuardTable, err)
	}
	var out []guardEntry
	for _, o := range doc.Nftables {
		if o.Set == nil {
			continue
		}
		for _, e := range o.Set.Elem {
			key, _, err := elemKey(e, false)
			if err != nil {
				return nil, fmt.Errorf("parse set %s: %w", o.Set.Name, err)
			}
			if len(key) != 2 {
				return nil, fmt.Errorf("parse set %s: element %s is not veth . address", o.Set.Name, e)
			}
			a, err := netip.ParseAddr(key[1])
			if err != nil {
				return nil, fmt.Errorf("parse set %s: element %s: %w", o.Set.Name, e, err)
			}
			out = append(out, guardEntry{key[0], a})
		}
	}
	return out, nil
}

// parsePolicy reads `nft -j list table inet flock`: every element of its
// maps and sets that is keyed by a host veth (the verdict maps, the
// hairpin set, the drop-counter maps) and the per-pod drop counters. The
// allow-list chains' sets hold peer addresses, not veths, and are skipped.
func parsePolicy(b []byte) ([]policyElem, error) {
	var doc nftDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse nft -j list table %s %s: %w", policy.TableFamily, policy.TableName, err)
	}
	var out []policyElem
	for _, o := range doc.Nftables {
		s, isMap := o.Set, false
		if o.Map != nil {
			s, isMap = o.Map, true
		}
		if c := o.Counter; c != nil {
			for _, p := range []string{policy.DropCounterIngress, policy.DropCounterEgress} {
				if iface, ok := strings.CutPrefix(c.Name, p); ok {
					out = append(out, policyElem{Where: "counter " + p, Iface: iface})
				}
			}
		}
		if s == nil {
			continue
		}
		switch s.Name {
		case ingressMap, egressMap, hairpinSet, "ingress_drops", "egress_drops":
		default:
			continue
		}
		for _, e := range s.Elem {
			key, comment, err := elemKey(e, isMap)
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", s.Name, err)
			}
			if s.Name == hairpinSet && (len(key) != 2 || key[0] != key[1]) {
				return nil, fmt.Errorf("parse %s: element %s is not veth . the same veth", s.Name, e)
			}
			if len(key) == 0 {
				return nil, fmt.Errorf("parse %s: element %s has no key", s.Name, e)
			}
			out = append(out, policyElem{Where: s.Name, Iface: key[0], Comment: comment})
		}
	}
	return out, nil
}

// elemKey reads one set element, or a map element's key ([key, value]):
// a string, {"elem": {"val": …, "comment": …}}, or {"concat": [...]}.
func elemKey(raw json.RawMessage, isMap bool) (key []string, comment string, err error) {
	if isMap {
		var kv []json.RawMessage
		if err := json.Unmarshal(raw, &kv); err != nil || len(kv) != 2 {
			return nil, "", fmt.Errorf("map element %s is not [key, value]", raw)
		}
		raw = kv[0]
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, "", nil
	}
	var o struct {
		Elem *struct {
			Val     json.RawMessage `json:"val"`
			Comment string          `json:"comment"`
		} `json:"elem"`
		Concat []json.RawMessage `json:"concat"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, "", fmt.Errorf("element %s: %w", raw, err)
	}
	switch {
	case o.Elem != nil:
		key, _, err := elemKey(o.Elem.Val, false)
		return key, o.Elem.Comment, err
	case o.Concat != nil:
		for _, c := range o.Concat {
			var s string
			if err := json.Unmarshal(c, &s); err != nil {
				return nil, "", fmt.Errorf("element %s: part %s is not a string", raw, c)
			}
			key = append(key, s)
		}
		return key, "", nil
	}
	return nil, "", fmt.Errorf("element %s: neither a value, an elem nor a concat", raw)
}
