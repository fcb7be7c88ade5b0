package datapath

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fritzlab/flock/internal/testns"
)

func TestSetupPodsReachEachOther(t *testing.T) {
	requireRoot(t)
	n := newNode(t)
	a := attachment(t, "pod-a", 0x0a, 10)
	b := attachment(t, "pod-b", 0x0b, 11)
	resA := n.setup(t, a)
	n.setup(t, b)

	// Right after Setup, with no settling time: no DAD, no ARP, no NDP
	// stands between a pod and its gateway.
	for _, p := range []struct {
		from Attachment
		to   string
	}{
		{a, b.IPv6.String()}, {a, b.IPv4.String()},
		{b, a.IPv6.String()}, {b, a.IPv4.String()},
		{a, "fe80::1%eth0"}, {a, testGw4.String()},
	} {
		mustPing(t, podNS(p.from), p.to)
	}
	mustPing(t, n.ns, a.IPv6.String())
	mustPing(t, n.ns, a.IPv4.String())

	if want := PlanPod(a).HostMAC.String(); resA.HostMAC != want {
		t.Errorf("Result.HostMAC = %s, want %s", resA.HostMAC, want)
	}
	link := testns.Run(t, "ip", "-n", podNS(a), "-o", "link", "show", "dev", "eth0")
	if !strings.HasPrefix(link, fmt.Sprintf("%d: eth0@", resA.PodIfIndex)) || !strings.Contains(link, "link/ether "+resA.PodMAC) {
		t.Errorf("Result %+v does not match the pod's eth0: %s", resA, link)
	}
	for _, at := range []Attachment{a, b} {
		if err := n.k.Check(at); err != nil {
			t.Errorf("Check(%s) after Setup: %v", at.ContainerID, err)
		}
	}
	got, err := n.k.HostIfaces()
	want := []string{a.hostIface(), b.hostIface()}
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("HostIfaces() = %v, %v; want %v", got, err, want)
	}
}

// With arp_ignore=1 on "all" (kube-proxy's strict ARP sets it) the node
// does not answer ARP for the gateway on lo from a veth, and proxy_arp does
// not help for a local address: pods must not need ARP for their gateway.
func TestSetupStrictARPNode(t *testing.T) {
	requireRoot(t)
	n := newNode(t)
	testns.Run(t, "ip", "netns", "exec", n.ns, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
	a := attachment(t, "strict-a", 0x0c, 12)
	b := attachment(t, "strict-b", 0x0d, 13)
	n.setup(t, a)
	n.setup(t, b)
	mustPing(t, podNS(a), testGw4.String())
	mustPing(t, podNS(a), b.IPv4.String())
	mustPing(t, n.ns, b.IPv4.String())
}

func TestSetupSingleFamily(t *testing.T) {
	requireRoot(t)
	n := newNode(t)
	dual := attachment(t, "dual", 0x20, 20)
	only6 := attachment(t, "only6", 0x21, 0)
	only4 := attachment(t, "only4", 0, 22)
	only4.MTU = 1400
	for _, a := range []Attachment{dual, only6, only4} {
		n.setup(t, a)
		if err := n.k.Check(a); err != nil {
			t.Errorf("Check(%s): %v", a.ContainerID, err)
		}
	}
	mustPing(t, podNS(only6), dual.IPv6.String())
	mustPing(t, podNS(only4), dual.IPv4.String())
	mustPing(t, podNS(dual), only6.IPv6.String())
	mustPing(t, podNS(dual), only4.IPv4.String())

	if r := testns.Run(t, "ip", "-4", "-n", podNS(only6), "route"); r != "" {
		t.Errorf("ipv6-only pod has IPv4 routes: %s", r)
	}
	if r := testns.Run(t, "ip", "-6", "-n", podNS(only4), "route", "show", "default"); r != "" {
		t.Errorf("ipv4-only pod has an IPv6 default route: %s", r)
	}
	if a := testns.Run(t, "ip", "-6", "-n", n.ns, "addr", "show", "dev", only4.hostIface()); strings.Contains(a, "fe80::1/64") {
		t.Errorf("ipv4-only pod's host veth has fe80::1: %s", a)
	}
	if l := testns.Run(t, "ip", "-n", podNS(only4), "link", "show", "dev", "eth0"); !strings.Contains(l, "mtu 1400") {
		t.Errorf("pod end of an MTU 1400 attachment: %s", l)
	}
}

func TestCheckNamesWhatIsMissing(t *testing.T) {
	requireRoot(t)
	n := newNode(t)
	tests := []struct {
		name   string
		break_ func(a Attachment) []string
		want   string
	}{{
		name: "host route",
		break_: func(a Attachment) []string {
			return []string{"ip", "-n", n.ns, "route", "del", a.IPv4.String() + "/32"}
		},
		want: "route 10.42.1.30/32 dev " + HostIfaceName("check-host route") + " proto 83 missing",
	}, {
		name:   "pod default route",
		break_: func(a Attachment) []string { return []string{"ip", "-6", "-n", podNS(a), "route", "del", "default"} },
		want:   "route ::/0 via fe80::1 dev eth0 in ",
	}, {
		name: "pod address",
		break_: func(a Attachment) []string {
			return []string{"ip", "-n", podNS(a), "addr", "del", a.IPv6.String() + "/128", "dev", "eth0"}
		},
		want: "address 2001:db8:42:1::30/128 missing on pod iface eth0",
	}, {
		name: "gateway neighbour",
		break_: func(a Attachment) []string {
			return []string{"ip", "-n", podNS(a), "neigh", "del", testGw4.String(), "dev", "eth0"}
		},
		want: "permanent neighbour 10.42.1.1 lladdr",
	}, {
		name: "fe80::1",
		break_: func(a Attachment) []string {
			return []string{"ip", "-n", n.ns, "addr", "del", "fe80::1/64", "dev", a.hostIface()}
		},
		want: "address fe80::1/64 missing on host veth",
	}, {
		name: "proxy_arp",
		break_: func(a Attachment) []string {
			return []string{"ip", "netns", "exec", n.ns, "sysctl", "-qw", "net/ipv4/conf/" + a.hostIface() + "/proxy_arp=0"}
		},
		want: "proxy_arp is 0, not 1",
	}, {
		name:   "host veth down",
		break_: func(a Attachment) []string { return []string{"ip", "-n", n.ns, "link", "set", a.hostIface(), "down"} },
		want:   "host veth " + HostIfaceName("check-host veth down") + " is down",
	}, {
		name:   "veth gone",
		break_: func(a Attachment) []string { return []string{"ip", "-n", n.ns, "link", "del", a.hostIface()} },
		want:   "host veth " + HostIfaceName("check-veth gone") + " not found",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := attachment(t, "check-"+tt.name, 0x30, 30)
			n.setup(t, a)
			t.Cleanup(func() { _ = n.k.Teardown(a) })
			if err := n.k.Check(a); err != nil {
				t.Fatalf("Check before breaking: %v", err)
			}
			testns.Run(t, tt.break_(a)...)
			err := n.k.Check(a)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestTeardown(t *testing.T) {
	requireRoot(t)
	n := newNode(t)
	a := attachment(t, "td", 0x40, 40)
	n.setup(t, a)
	if err := n.k.Teardown(a); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if hasLink(n.ns, a.hostIface()) || hasLink(podNS(a), "eth0") {
		t.Errorf("veth left after Teardown")
	}
	if left := n.podRoutes(t); left != "" {
		t.Errorf("flock routes left after Teardown:\n%s", left)
	}
	if err := n.k.Teardown(a); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
	if err := n.k.Teardown(Attachment{ContainerID: "never-added"}); err != nil {
		t.Errorf("Teardown of a container never added: %v", err)
	}
	if err := n.k.Teardown(Attachment{}); err == nil {
		t.Errorf("Teardown of an empty attachment succeeded; it cannot know what to delete")
	}
	// Only the host iface's name, as a DEL after an agent restart may have.
	b := attachment(t, "td-name-only", 0x41, 41)
	n.setup(t, b)
	if err := n.k.Teardown(Attachment{HostIface: b.hostIface()}); err != nil || hasLink(n.ns, b.hostIface()) {
		t.Errorf("Teardown by host iface name: %v, veth left: %v", err, hasLink(n.ns, b.hostIface()))
	}
	// A link of a flock name that is not a veth (a bridge here) is not flock's.
	testns.Run(t, "ip", "-n", n.ns, "link", "add", HostIfaceName("dummy"), "type", "bridge")
	if err := n.k.Teardown(Attachment{ContainerID: "dummy"}); err == nil || !hasLink(n.ns, HostIfaceName("dummy")) {
		t.Errorf("Teardown deleted a bridge (err %v)", err)
	}
}

func TestTeardownNetnsGone(t *testing.T) {
	requireRoot(t)
	n := newNode(t)
	a := attachment(t, "gone", 0x50, 50)
	n.setup(t, a)
	testns.Run(t, "ip", "netns", "del", podNS(a))
	if err := n.k.Teardown(a); err != nil {
		t.Fatalf("Teardown with the netns gone: %v", err)
	}
	if hasLink(n.ns, a.hostIface()) {
		t.Errorf("host veth left")
	}
	if left := n.podRoutes(t); left != "" {
		t.Errorf("flock routes left:\n%s", left)
	}
	if err := n.k.Check(a); err == nil {
		t.Errorf("Check succeeded for a pod whose netns is gone")
	}
}

func TestSetupConcurrent(t *testing.T) {
	requireRoot(t)
	n := newNode(t)
	var pods []Attachment
	for i := range 8 {
		pods = append(pods, attachment(t, fmt.Sprintf("conc-%d", i), byte(0x60+i), byte(60+i)))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(pods))
	for i, a := range pods {
		wg.Go(func() { _, errs[i] = n.k.Setup(a) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Setup(%s): %v", pods[i].ContainerID, err)
		}
	}
	for _, a := range pods[1:] {
		mustPing(t, podNS(pods[0]), a.IPv6.String())
		mustPing(t, podNS(pods[0]), a.IPv4.String())
	}
	for i, a := range pods {
		wg.Go(func() { errs[i] = n.k.Teardown(a) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Teardown(%s): %v", pods[i].ContainerID, err)
		}
	}
	if left, _ := n.k.HostIfaces(); len(left) != 0 {
		t.Errorf("veths left: %v", left)
	}
}
