package anycast

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

var ip = netip.MustParseAddr

// Three pods; web-a and web-b serve the same addresses, db serves its own.
var (
	any6   = ip("2001:db8:ffff::80")
	any4   = ip("192.0.2.180")
	anyDB6 = ip("2001:db8:ffff::5432")

	webA = Allocation{Pod: "default/web-a", HostIface: "flock0000000a",
		IPv6: ip("2001:db8:42:1::a"), IPv4: ip("10.42.1.10"), Anycast: []netip.Addr{any6, any4}}
	webB = Allocation{Pod: "default/web-b", HostIface: "flock0000000b",
		IPv6: ip("2001:db8:42:1::b"), IPv4: ip("10.42.1.11"), Anycast: []netip.Addr{any4, any6}}
	db = Allocation{Pod: "data/db", HostIface: "flock0000000d",
		IPv6: ip("2001:db8:42:1::d"), Anycast: []netip.Addr{anyDB6}}

	hopA6 = NextHop{Via: webA.IPv6, Dev: webA.HostIface}
	hopA4 = NextHop{Via: webA.IPv4, Dev: webA.HostIface}
	hopB6 = NextHop{Via: webB.IPv6, Dev: webB.HostIface}
	hopB4 = NextHop{Via: webB.IPv4, Dev: webB.HostIface}
	hopD6 = NextHop{Via: db.IPv6, Dev: db.HostIface}
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name   string
		allocs []Allocation
		ready  map[string]bool
		want   map[netip.Addr][]NextHop
		warns  []string
	}{{
		name:   "nothing",
		allocs: nil, ready: nil,
		want: map[netip.Addr][]NextHop{},
	}, {
		name:   "one pod",
		allocs: []Allocation{db},
		ready:  map[string]bool{"data/db": true},
		want:   map[netip.Addr][]NextHop{anyDB6: {hopD6}},
	}, {
		name:   "two pods on one node: two sorted next hops per address",
		allocs: []Allocation{webB, webA},
		ready:  map[string]bool{"default/web-a": true, "default/web-b": true},
		want:   map[netip.Addr][]NextHop{any6: {hopA6, hopB6}, any4: {hopA4, hopB4}},
	}, {
		name:   "NotReady dropped",
		allocs: []Allocation{webA, webB},
		ready:  map[string]bool{"default/web-a": false, "default/web-b": true},
		want:   map[netip.Addr][]NextHop{any6: {hopB6}, any4: {hopB4}},
	}, {
		name:   "no Ready pod: address absent",
		allocs: []Allocation{webA, webB, db},
		ready:  map[string]bool{"default/web-a": false, "default/web-b": false, "data/db": true},
		want:   map[netip.Addr][]NextHop{anyDB6: {hopD6}},
	}, {
		name:   "pending (unknown to the informer) skipped",
		allocs: []Allocation{webA, webB, db},
		ready:  map[string]bool{"default/web-b": true},
		want:   map[netip.Addr][]NextHop{any6: {hopB6}, any4: {hopB4}},
	}, {
		name:   "mixed IPv6 and IPv4, each via the pod's address of its family",
		allocs: []Allocation{webA, db},
		ready:  map[string]bool{"default/web-a": true, "data/db": true},
		want:   map[netip.Addr][]NextHop{any6: {hopA6}, any4: {hopA4}, anyDB6: {hopD6}},
	}, {
		name: "family mismatch skipped with a warning",
		allocs: []Allocation{{Pod: "default/only6", HostIface: "flock00000006", IPv6: ip("2001:db8:42:1::6"),
			Anycast: []netip.Addr{any4, any6}}},
		ready: map[string]bool{"default/only6": true},
		want:  map[netip.Addr][]NextHop{any6: {{Via: ip("2001:db8:42:1::6"), Dev: "flock00000006"}}},
		warns: []string{"pod default/only6: anycast address 192.0.2.180 is IPv4 but the pod has no IPv4 address; not routing it to this pod"},
	}, {
		name: "IPv4-only pod with an IPv6 address",
		allocs: []Allocation{{Pod: "default/only4", HostIface: "flock00000004", IPv4: ip("10.42.1.4"),
			Anycast: []netip.Addr{any6}}},
		ready: map[string]bool{"default/only4": true},
		want:  map[netip.Addr][]NextHop{},
		warns: []string{"pod default/only4: anycast address 2001:db8:ffff::80 is IPv6 but the pod has no IPv6 address; not routing it to this pod"},
	}, {
		name: "warnings only for Ready pods",
		allocs: []Allocation{{Pod: "default/only4", HostIface: "flock00000004", IPv4: ip("10.42.1.4"),
			Anycast: []netip.Addr{any6}}},
		ready: map[string]bool{"default/only4": false},
		want:  map[netip.Addr][]NextHop{},
	}, {
		name: "not global unicast, or another pod's address: skipped with warnings",
		allocs: []Allocation{webB, {Pod: "default/odd", HostIface: "flock000000dd", IPv6: ip("2001:db8:42:1::dd"), IPv4: ip("10.42.1.221"),
			Anycast: []netip.Addr{ip("fe80::1"), ip("::ffff:192.0.2.1"), ip("224.0.0.1"), webB.IPv4, ip("2001:db8:42:1::dd")}}},
		ready: map[string]bool{"default/odd": true},
		want:  map[netip.Addr][]NextHop{},
		warns: []string{
			"pod default/odd: anycast address 10.42.1.11 is a pod's own address on this node; not routing it to this pod",
			"pod default/odd: anycast address 224.0.0.1 is not a global unicast address; not routing it to this pod",
			"pod default/odd: anycast address ::ffff:192.0.2.1 is not a global unicast address; not routing it to this pod",
			"pod default/odd: anycast address 2001:db8:42:1::dd is a pod's own address on this node; not routing it to this pod",
			"pod default/odd: anycast address fe80::1 is not a global unicast address; not routing it to this pod",
		},
	}, {
		name: "allocation without a host veth skipped whole",
		allocs: []Allocation{webA, {Pod: "default/web-c", IPv6: ip("2001:db8:42:1::c"), IPv4: ip("10.42.1.12"),
			Anycast: []netip.Addr{any6}}},
		ready: map[string]bool{"default/web-a": true, "default/web-c": true},
		want:  map[netip.Addr][]NextHop{any6: {hopA6}, any4: {hopA4}},
		warns: []string{"pod default/web-c has an allocation without a host veth; not routing its anycast addresses"},
	}, {
		name: "duplicates in a pod's list, and a pod with two attachments",
		allocs: []Allocation{
			{Pod: "default/web-a", HostIface: "flock0000000a", IPv6: webA.IPv6, Anycast: []netip.Addr{any6, any6}},
			{Pod: "default/web-a", HostIface: "flock0000000a", IPv6: webA.IPv6, Anycast: []netip.Addr{any6}},
			{Pod: "default/web-a", HostIface: "flock000000a2", IPv6: ip("2001:db8:42:1::a2"), Anycast: []netip.Addr{any6}},
		},
		ready: map[string]bool{"default/web-a": true},
		want:  map[netip.Addr][]NextHop{any6: {hopA6, {Via: ip("2001:db8:42:1::a2"), Dev: "flock000000a2"}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warns := Resolve(tt.allocs, tt.ready)
			if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
				t.Errorf("desired (-want +got):\n%s", diff)
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

// Next hops come out sorted by via, then dev, whatever order the pods and
// their addresses come in: the same pods always give the same route.
func TestResolveDeterministic(t *testing.T) {
	var allocs []Allocation
	ready := map[string]bool{}
	for i := range 40 {
		b6 := ip("2001:db8:42:1::").As16()
		b6[14], b6[15] = byte(i), byte(255-i)
		a := Allocation{
			Pod:       "ns/pod-" + string(rune('a'+i%26)) + string(rune('a'+i/26)),
			HostIface: "flock" + string(rune('a'+(i*7)%26)) + "0000000",
			IPv6:      netip.AddrFrom16(b6),
			IPv4:      netip.AddrFrom4([4]byte{10, 42, 1, byte(200 - i)}),
			Anycast:   []netip.Addr{any6, any4, anyDB6, ip("2001:db8:ffff::2"), ip("192.0.2.129")},
		}
		a.Anycast = a.Anycast[:1+i%5]
		allocs = append(allocs, a)
		ready[a.Pod] = i%3 != 0
	}
	want, wantWarns := Resolve(allocs, ready)
	if len(want) != 5 {
		t.Fatalf("want 5 addresses, got %d: %v", len(want), want)
	}
	for addr, hops := range want {
		if !slices.IsSortedFunc(hops, NextHop.Compare) {
			t.Errorf("next hops of %s not sorted: %v", addr, hops)
		}
		if len(hops) < 2 {
			t.Errorf("next hops of %s: %v, want several", addr, hops)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		shuffled := slices.Clone(allocs)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for i := range shuffled {
			as := slices.Clone(shuffled[i].Anycast)
			rng.Shuffle(len(as), func(i, j int) { as[i], as[j] = as[j], as[i] })
			shuffled[i].Anycast = as
		}
		got, warns := Resolve(shuffled, ready)
		if !Equal(got, want) {
			t.Fatalf("shuffled input gave another result:\n%v\nwant\n%v", got, want)
		}
		if diff := cmp.Diff(wantWarns, warns, addrCmp); diff != "" {
			t.Fatalf("shuffled input gave other warnings (-want +got):\n%s", diff)
		}
	}
	// Resolve must not reorder its caller's slices.
	if allocs[0].Pod != "ns/pod-aa" {
		t.Errorf("Resolve reordered its input")
	}
}

func TestActive(t *testing.T) {
	got := Active(map[netip.Addr][]NextHop{anyDB6: {hopD6}, any4: {hopA4}, any6: {hopA6, hopB6}})
	if diff := cmp.Diff([]netip.Addr{any4, any6, anyDB6}, got, addrCmp); diff != "" {
		t.Errorf("Active (-want +got):\n%s", diff)
	}
	if got := Active(nil); len(got) != 0 {
		t.Errorf("Active(nil) = %v", got)
	}
}

func TestEqual(t *testing.T) {
	a := map[netip.Addr][]NextHop{any6: {hopA6, hopB6}}
	for _, tt := range []struct {
		b    map[netip.Addr][]NextHop
		want bool
	}{
		{map[netip.Addr][]NextHop{any6: {hopA6, hopB6}}, true},
		{map[netip.Addr][]NextHop{any6: {hopB6, hopA6}}, false},
		{map[netip.Addr][]NextHop{any6: {hopA6}}, false},
		{map[netip.Addr][]NextHop{any4: {hopA6, hopB6}}, false},
		{map[netip.Addr][]NextHop{any6: {hopA6, hopB6}, any4: {hopA4}}, false},
		{nil, false},
	} {
		if got := Equal(a, tt.b); got != tt.want {
			t.Errorf("Equal(%v, %v) = %t, want %t", a, tt.b, got, tt.want)
		}
	}
	if !Equal(nil, map[netip.Addr][]NextHop{}) {
		t.Errorf("Equal(nil, empty) = false")
	}
}

// FuzzResolve: any allocations and readiness resolve without panicking into
// routes a kernel can take: next hops sorted and distinct, each a Ready
// pod's own address of the anycast address's family through that pod's
// veth, and every address served by a Ready pod; Active lists exactly the
// addresses, sorted.
func FuzzResolve(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{255, 0, 255, 0, 7, 7, 7, 7, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Few distinct values per field, so that pods share addresses and
		// veths and collide in every way.
		pool := []netip.Addr{any6, any4, anyDB6, ip("fe80::1"), ip("::ffff:192.0.2.1"), webA.IPv6, webB.IPv4, netip.Addr{}}
		pod6 := []netip.Addr{webA.IPv6, webB.IPv6, db.IPv6, {}}
		pod4 := []netip.Addr{webA.IPv4, webB.IPv4, ip("10.42.1.12"), {}}
		var allocs []Allocation
		ready := map[string]bool{}
		for len(data) >= 4 {
			b := data[:4]
			data = data[4:]
			a := Allocation{
				Pod:       "ns/p" + strconv.Itoa(int(b[0]%5)),
				HostIface: []string{"", "flock0000000a", "flock0000000b", "flock0000000c"}[b[0]>>3%4],
				IPv6:      pod6[b[1]%4],
				IPv4:      pod4[b[1]>>2%4],
			}
			for i := range 8 {
				if b[2]&(1<<i) != 0 {
					a.Anycast = append(a.Anycast, pool[i])
				}
			}
			ready[a.Pod] = b[3]%3 != 0
			allocs = append(allocs, a)
		}
		desired, _ := Resolve(allocs, ready)
		for addr, hops := range desired {
			if len(hops) == 0 || !slices.IsSortedFunc(hops, NextHop.Compare) || len(slices.Compact(slices.Clone(hops))) != len(hops) {
				t.Fatalf("%s: next hops %v empty, unsorted or repeated", addr, hops)
			}
			if !addr.IsGlobalUnicast() || addr.Is4In6() {
				t.Fatalf("%s routed", addr)
			}
			for _, h := range hops {
				if !slices.ContainsFunc(allocs, func(a Allocation) bool {
					return ready[a.Pod] && a.HostIface == h.Dev && h.Dev != "" && slices.Contains(a.Anycast, addr) &&
						(addr.Is6() && h.Via == a.IPv6 || addr.Is4() && h.Via == a.IPv4)
				}) {
					t.Fatalf("%s %s: no Ready pod behind it", addr, h)
				}
			}
		}
		active := Active(desired)
		if len(active) != len(desired) || !slices.IsSortedFunc(active, netip.Addr.Compare) {
			t.Fatalf("Active = %v for %v", active, desired)
		}
	})
}
