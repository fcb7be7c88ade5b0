package datapath

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fritzlab/flock/internal/testns"
	"github.com/fritzlab/flock/pkg/anycast"
)

// The anycast kernel tests play a node and its pods in namespaces named
// flk-any-PID-N, set up with the real Setup; assertions go through iproute2,
// ping and the pods' ICMP counters.

// newAnyNode is a node as the agent leaves it at start.
func newAnyNode(t testing.TB) *testNode {
	t.Helper()
	ns := testns.New(t, "any")
	k, err := NewAt(testns.Path(ns))
	if err != nil {
		t.Fatalf("NewAt: %v", err)
	}
	t.Cleanup(k.Close)
	if err := k.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if err := k.SyncPools(Pools{Pool6: testPool6, Pool4: testPool4}); err != nil {
		t.Fatalf("SyncPools: %v", err)
	}
	return &testNode{ns: ns, k: k}
}

// anyPod sets up a dual-stack pod on n whose addresses end in host, and
// returns its attachment and the resolver's view of it.
func anyPod(t testing.TB, n *testNode, id string, host byte, serves ...netip.Addr) (Attachment, anycast.Allocation) {
	t.Helper()
	b6, b4 := testPool6.Addr().As16(), testPool4.Addr().As4()
	b6[15], b4[3] = host, host
	a := Attachment{ContainerID: id, IfName: "eth0", Netns: testns.Path(testns.New(t, "any")),
		IPv6: netip.AddrFrom16(b6), IPv4: netip.AddrFrom4(b4), Gateway4: testGw4}
	n.setup(t, a)
	if err := n.k.SetPodAnycast(a.Netns, serves); err != nil {
		t.Fatalf("SetPodAnycast(%s): %v", id, err)
	}
	return a, anycast.Allocation{Pod: "default/" + id, HostIface: a.hostIface(), IPv6: a.IPv6, IPv4: a.IPv4, Anycast: serves}
}

// shownAnycast is the node's anycast routes as `ip -j route show proto 84`
// reports them, one line each: "DST via GW dev DEV", or "DST" followed by
// " nexthop via GW dev DEV" per next hop, in the kernel's order.
func shownAnycast(t testing.TB, n *testNode) []string {
	t.Helper()
	var lines []string
	for _, fam := range []string{"-4", "-6"} {
		var routes []struct {
			Dst, Gateway, Dev string
			Nexthops          []struct{ Gateway, Dev string }
		}
		out := testns.Run(t, "ip", "-j", fam, "-n", n.ns, "route", "show", "proto", strconv.Itoa(AnycastRouteProtocol))
		if err := json.Unmarshal([]byte(out), &routes); err != nil {
			t.Fatalf("parse %q: %v", out, err)
		}
		for _, r := range routes {
			l := r.Dst
			if r.Gateway != "" {
				l += " via " + r.Gateway + " dev " + r.Dev
			}
			for _, h := range r.Nexthops {
				l += " nexthop via " + h.Gateway + " dev " + h.Dev
			}
			lines = append(lines, l)
		}
	}
	return lines
}

// icmpEchos counts the echo requests a namespace has received, per family.
func icmpEchos(t testing.TB, ns string) (v6, v4 int) {
	t.Helper()
	for _, l := range strings.Split(testns.Run(t, "ip", "netns", "exec", ns, "cat", "/proc/net/snmp6"), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "Icmp6InEchos" {
			v6, _ = strconv.Atoi(f[1])
		}
	}
	var header []string
	for _, l := range strings.Split(testns.Run(t, "ip", "netns", "exec", ns, "cat", "/proc/net/snmp"), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Icmp:" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		if i := slices.Index(header, "InEchos"); i > 0 && i < len(f) {
			v4, _ = strconv.Atoi(f[i])
		}
	}
	return v6, v4
}

var (
	kAny6 = netip.MustParseAddr("2001:db8:ffff::80")
	kAny4 = netip.MustParseAddr("192.0.2.180")
)

func TestSyncAnycast(t *testing.T) {
	requireRoot(t)
	n := newAnyNode(t)
	a, allocA := anyPod(t, n, "any-a", 0x0a, kAny6, kAny4)
	b, allocB := anyPod(t, n, "any-b", 0x0b, kAny4, kAny6)
	ha, hb := a.hostIface(), b.hostIface()
	// Not flock's anycast routes, though one has flock's other protocol
	// and the shape of an anycast route: both must survive.
	testns.Run(t, "ip", "-n", n.ns, "-6", "route", "add", "2001:db8:ffff::99/128", "via", a.IPv6.String(), "dev", ha, "proto", "83")
	testns.Run(t, "ip", "-n", n.ns, "route", "add", "192.0.2.99/32", "via", a.IPv4.String(), "dev", ha, "proto", "static")
	podRoutes := n.podRoutes(t)
	if !strings.Contains(podRoutes, "2001:db8:ffff::99 via") || !strings.Contains(podRoutes, a.IPv4.String()+" dev "+ha) {
		t.Fatalf("pod host routes and the foreign proto 83 route not listed:\n%s", podRoutes)
	}

	sync := func(ready map[string]bool) {
		t.Helper()
		// b first: the next hops' order must not depend on the input's.
		desired, warns := anycast.Resolve([]anycast.Allocation{allocB, allocA}, ready)
		if len(warns) > 0 {
			t.Fatalf("Resolve warned: %v", warns)
		}
		if err := n.k.SyncAnycast(desired); err != nil {
			t.Fatalf("SyncAnycast(%v): %v", desired, err)
		}
	}
	expect := func(what string, want ...string) {
		t.Helper()
		if diff := cmp.Diff(want, shownAnycast(t, n)); diff != "" {
			t.Errorf("%s: anycast routes (-want +got):\n%s", what, diff)
		}
	}
	quiet := func(what string, ready map[string]bool) {
		t.Helper()
		if events := kernelEvents(t, n, func() { sync(ready) }); events != 0 {
			t.Errorf("%s: a SyncAnycast with nothing to do changed the kernel %d times", what, events)
		}
	}

	both := map[string]bool{allocA.Pod: true, allocB.Pod: true}
	sync(both)
	expect("two Ready pods",
		"192.0.2.180 nexthop via 10.42.1.10 dev "+ha+" nexthop via 10.42.1.11 dev "+hb,
		"2001:db8:ffff::80 nexthop via 2001:db8:42:1::a dev "+ha+" nexthop via 2001:db8:42:1::b dev "+hb)
	quiet("two Ready pods", both)

	// Flows from many sources reach both pods. (The node's source addresses
	// are on its lo; the pods answer them through their default routes.)
	before6a, before4a := icmpEchos(t, podNS(a))
	before6b, before4b := icmpEchos(t, podNS(b))
	const sources = 24
	for i := 1; i <= sources; i++ {
		src6, src4 := fmt.Sprintf("2001:db8:99::%x", i), fmt.Sprintf("10.99.0.%d", i)
		testns.Run(t, "ip", "-n", n.ns, "addr", "add", src6+"/128", "dev", "lo", "nodad")
		testns.Run(t, "ip", "-n", n.ns, "addr", "add", src4+"/32", "dev", "lo")
		testns.Run(t, "ip", "netns", "exec", n.ns, "ping", "-c1", "-W2", "-I", src6, kAny6.String())
		testns.Run(t, "ip", "netns", "exec", n.ns, "ping", "-c1", "-W2", "-I", src4, kAny4.String())
	}
	after6a, after4a := icmpEchos(t, podNS(a))
	after6b, after4b := icmpEchos(t, podNS(b))
	for _, c := range []struct {
		fam          string
		toA, toB, of int
	}{{"IPv6", after6a - before6a, after6b - before6b, sources}, {"IPv4", after4a - before4a, after4b - before4b, sources}} {
		if c.toA == 0 || c.toB == 0 || c.toA+c.toB != c.of {
			t.Errorf("%s: of %d pings from as many sources, %d reached pod a and %d pod b; want all, spread over both", c.fam, c.of, c.toA, c.toB)
		}
	}

	onlyB := map[string]bool{allocA.Pod: false, allocB.Pod: true}
	sync(onlyB)
	expect("pod a NotReady", "192.0.2.180 via 10.42.1.11 dev "+hb, "2001:db8:ffff::80 via 2001:db8:42:1::b dev "+hb)
	quiet("pod a NotReady", onlyB)
	mustPing(t, n.ns, kAny6.String())
	mustPing(t, n.ns, kAny4.String())

	onlyA := map[string]bool{allocA.Pod: true} // b pending
	sync(onlyA)
	expect("pod b pending", "192.0.2.180 via 10.42.1.10 dev "+ha, "2001:db8:ffff::80 via 2001:db8:42:1::a dev "+ha)
	mustPing(t, n.ns, kAny6.String())
	mustPing(t, n.ns, kAny4.String())

	sync(both)
	expect("both Ready again",
		"192.0.2.180 nexthop via 10.42.1.10 dev "+ha+" nexthop via 10.42.1.11 dev "+hb,
		"2001:db8:ffff::80 nexthop via 2001:db8:42:1::a dev "+ha+" nexthop via 2001:db8:42:1::b dev "+hb)

	sync(nil)
	expect("no Ready pod")
	quiet("no Ready pod", nil)
	if err := ping(n.ns, kAny4.String()); err == nil {
		t.Errorf("ping %s succeeded with no anycast route", kAny4)
	}
	if got := n.podRoutes(t); got != podRoutes {
		t.Errorf("proto 83 routes changed by SyncAnycast:\n%s\nwere:\n%s", got, podRoutes)
	}
	if r := testns.Run(t, "ip", "-n", n.ns, "route", "show", "192.0.2.99/32"); !strings.Contains(r, "proto static") {
		t.Errorf("foreign route 192.0.2.99/32 gone: %q", r)
	}
}

// Pods go away under the routes: the kernel drops their next hops with
// their veths, and SyncAnycast neither fails on what is gone nor lets a
// vanished veth stop the rest.
func TestSyncAnycastPodGone(t *testing.T) {
	requireRoot(t)
	n := newAnyNode(t)
	a, allocA := anyPod(t, n, "gone-a", 0x1a, kAny6, kAny4)
	b, allocB := anyPod(t, n, "gone-b", 0x1b, kAny6, kAny4)
	ready := map[string]bool{allocA.Pod: true, allocB.Pod: true}
	desired, _ := anycast.Resolve([]anycast.Allocation{allocA, allocB}, ready)
	if err := n.k.SyncAnycast(desired); err != nil {
		t.Fatalf("SyncAnycast: %v", err)
	}
	if err := n.k.Teardown(b); err != nil {
		t.Fatalf("Teardown: %v", err)
	}

	// The store still has b: its next hops are left out, with an error.
	err := n.k.SyncAnycast(desired)
	if err == nil || !strings.Contains(err.Error(), "dev "+b.hostIface()+": no such device") {
		t.Errorf("SyncAnycast with a vanished veth: %v, want an error naming it", err)
	}
	want := []string{"192.0.2.180 via 10.42.1.26 dev " + a.hostIface(), "2001:db8:ffff::80 via 2001:db8:42:1::1a dev " + a.hostIface()}
	if diff := cmp.Diff(want, shownAnycast(t, n)); diff != "" {
		t.Errorf("anycast routes (-want +got):\n%s", diff)
	}
	mustPing(t, n.ns, kAny6.String())
	mustPing(t, n.ns, kAny4.String())

	// b is gone from the store too: all is well.
	desired, _ = anycast.Resolve([]anycast.Allocation{allocA}, ready)
	if err := n.k.SyncAnycast(desired); err != nil {
		t.Errorf("SyncAnycast after the pod's DEL: %v", err)
	}
	if err := n.k.Teardown(a); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if err := n.k.SyncAnycast(nil); err != nil {
		t.Errorf("SyncAnycast(nil) after every veth is gone: %v", err)
	}
	if got := shownAnycast(t, n); len(got) != 0 {
		t.Errorf("anycast routes left: %v", got)
	}
}

// An address already routed by someone else is not taken over: the error
// says so, and the other addresses are still applied.
func TestSyncAnycastForeignRoute(t *testing.T) {
	requireRoot(t)
	n := newAnyNode(t)
	a, allocA := anyPod(t, n, "foreign-a", 0x2a, kAny6, kAny4)
	testns.Run(t, "ip", "-n", n.ns, "route", "add", kAny4.String()+"/32", "via", a.IPv4.String(), "dev", a.hostIface(), "proto", "static")
	desired, _ := anycast.Resolve([]anycast.Allocation{allocA}, map[string]bool{allocA.Pod: true})
	err := n.k.SyncAnycast(desired)
	if err == nil || !strings.Contains(err.Error(), "add anycast route 192.0.2.180/32") {
		t.Errorf("SyncAnycast over a foreign route: %v, want an error naming it", err)
	}
	if diff := cmp.Diff([]string{"2001:db8:ffff::80 via 2001:db8:42:1::2a dev " + a.hostIface()}, shownAnycast(t, n)); diff != "" {
		t.Errorf("anycast routes (-want +got):\n%s", diff)
	}
	if r := testns.Run(t, "ip", "-n", n.ns, "route", "show", kAny4.String()+"/32"); !strings.Contains(r, "proto static") {
		t.Errorf("foreign route replaced: %q", r)
	}
}

func TestSetPodAnycast(t *testing.T) {
	requireRoot(t)
	n := newAnyNode(t)
	a, _ := anyPod(t, n, "lo-a", 0x3a)
	pod := podNS(a)
	show := func() string { return testns.Run(t, "ip", "-n", pod, "-o", "addr", "show", "dev", "lo") }
	set := func(addrs ...netip.Addr) {
		t.Helper()
		if err := n.k.SetPodAnycast(a.Netns, addrs); err != nil {
			t.Fatalf("SetPodAnycast(%v): %v", addrs, err)
		}
	}
	other6 := netip.MustParseAddr("2001:db8:ffff::81")
	set(kAny6, kAny4, other6, kAny6)
	got := show()
	for _, want := range []string{"inet 127.0.0.1/8", "inet6 ::1/128", "inet 192.0.2.180/32", "inet6 2001:db8:ffff::80/128", "inet6 2001:db8:ffff::81/128"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q on the pod's lo:\n%s", want, got)
		}
	}
	if strings.Contains(got, "tentative") {
		t.Errorf("anycast address tentative (DAD) on the pod's lo:\n%s", got)
	}
	if events := kernelEvents(t, &testNode{ns: pod}, func() { set(kAny4, other6, kAny6) }); events != 0 {
		t.Errorf("a SetPodAnycast with nothing to do changed the pod %d times", events)
	}
	testns.Run(t, "ip", "-n", pod, "addr", "add", "198.51.100.1/32", "dev", "lo")
	set(kAny6)
	got = show()
	for _, gone := range []string{"192.0.2.180", "2001:db8:ffff::81", "198.51.100.1"} {
		if strings.Contains(got, gone) {
			t.Errorf("%s still on the pod's lo:\n%s", gone, got)
		}
	}
	if !strings.Contains(got, "2001:db8:ffff::80/128") || !strings.Contains(got, "127.0.0.1/8") || !strings.Contains(got, "::1/128") {
		t.Errorf("SetPodAnycast(%s) removed too much:\n%s", kAny6, got)
	}
	if err := n.k.SetPodAnycast(a.Netns, []netip.Addr{kAny4, netip.MustParseAddr("fe80::5")}); err == nil {
		t.Errorf("SetPodAnycast accepted a link-local address")
	}
	if got := show(); strings.Contains(got, "192.0.2.180") {
		t.Errorf("a refused SetPodAnycast changed the pod's lo:\n%s", got)
	}
	set()
	if got := show(); strings.Contains(got, "2001:db8:ffff") || !strings.Contains(got, "127.0.0.1/8") {
		t.Errorf("after SetPodAnycast(nil):\n%s", got)
	}
	if err := n.k.SetPodAnycast("/run/netns/flk-any-missing", nil); err == nil {
		t.Errorf("SetPodAnycast on a missing netns succeeded")
	}
}
