package datapath

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/fritzlab/flock/internal/testns"
)

func TestInit(t *testing.T) {
	requireRoot(t)
	n := newBareNode(t)
	if err := n.k.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	for _, key := range []string{"net.ipv6.conf.all.forwarding", "net.ipv4.ip_forward",
		"net.ipv4.fib_multipath_hash_policy", "net.ipv6.fib_multipath_hash_policy"} {
		if v := strings.TrimSpace(testns.Run(t, "ip", "netns", "exec", n.ns, "sysctl", "-n", key)); v != "1" {
			t.Errorf("%s = %s in the node's netns, want 1", key, v)
		}
	}
	if l := testns.Run(t, "ip", "-n", n.ns, "link", "show", "lo"); !strings.Contains(l, "UP") {
		t.Errorf("lo not up: %s", l)
	}
}

// With the host's /proc/sys/net mounted elsewhere (the DaemonSet's
// /host/proc/sys/net: an unprivileged container's /proc/sys is read-only),
// the sysctls go through that mount and still land in the node's
// namespace.
func TestInitProcSysMount(t *testing.T) {
	requireRoot(t)
	n := newBareNode(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	testns.Run(t, "mount", "--bind", "/proc/sys/net", filepath.Join(dir, "net"))
	t.Cleanup(func() { _ = exec.Command("umount", filepath.Join(dir, "net")).Run() })
	n.k.SetProcSys(dir)
	if err := n.k.Init(); err != nil {
		t.Fatalf("Init through %s: %v", dir, err)
	}
	if v := strings.TrimSpace(testns.Run(t, "ip", "netns", "exec", n.ns, "sysctl", "-n", "net.ipv4.ip_forward")); v != "1" {
		t.Errorf("net.ipv4.ip_forward = %s in the node's netns, want 1", v)
	}
	// A directory that is no sysctl tree is an error naming the key, not a
	// silent success.
	n.k.SetProcSys(t.TempDir())
	if err := n.k.Init(); err == nil || !strings.Contains(err.Error(), "net/ipv6/conf/all/forwarding") {
		t.Errorf("Init with an empty proc-sys: %v, want an error naming the sysctl", err)
	}
}

func TestSyncPools(t *testing.T) {
	requireRoot(t)
	n := newBareNode(t)
	if err := n.k.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	show := func() string {
		return testns.Run(t, "ip", "-n", n.ns, "-4", "route", "show", "type", "blackhole") +
			testns.Run(t, "ip", "-n", n.ns, "-6", "route", "show", "type", "blackhole") +
			testns.Run(t, "ip", "-n", n.ns, "-4", "-o", "addr", "show", "dev", "lo")
	}
	// Not flock's: another protocol, another label. They must survive.
	testns.Run(t, "ip", "-n", n.ns, "route", "add", "blackhole", "10.99.0.0/16", "proto", "static")
	testns.Run(t, "ip", "-n", n.ns, "addr", "add", "10.88.0.1/32", "dev", "lo", "label", "lo:other")

	sync := func(p Pools) {
		t.Helper()
		if err := n.k.SyncPools(p); err != nil {
			t.Fatalf("SyncPools(%+v): %v", p, err)
		}
	}
	sync(Pools{Pool6: testPool6, Pool4: testPool4})
	got := show()
	for _, want := range []string{
		"blackhole 10.42.1.0/24 proto 83", "blackhole 2001:db8:42:1::/64 dev lo proto 83",
		"inet 10.42.1.1/32 scope global lo:flock", "blackhole 10.99.0.0/16 proto static", "10.88.0.1/32",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("after SyncPools, no %q in:\n%s", want, got)
		}
	}

	// Already right: not one route or address event.
	if events := kernelEvents(t, n, func() { sync(Pools{Pool6: testPool6, Pool4: testPool4}) }); events != 0 {
		t.Errorf("a SyncPools with nothing to do changed the kernel %d times", events)
	}

	// New pools: the old flock-owned state goes, foreign state stays.
	sync(Pools{Pool4: netip.MustParsePrefix("10.43.0.0/22")})
	got = show()
	for _, gone := range []string{"10.42.1.0/24", "2001:db8:42:1::/64", "10.42.1.1/32"} {
		if strings.Contains(got, gone) {
			t.Errorf("after SyncPools with new pools, %s is still there:\n%s", gone, got)
		}
	}
	for _, want := range []string{"blackhole 10.43.0.0/22 proto 83", "10.43.0.1/32", "10.99.0.0/16", "10.88.0.1/32"} {
		if !strings.Contains(got, want) {
			t.Errorf("after SyncPools with new pools, no %q in:\n%s", want, got)
		}
	}

	sync(Pools{})
	got = show()
	if strings.Contains(got, "proto 83") || strings.Contains(got, "lo:flock") {
		t.Errorf("flock state left after SyncPools(Pools{}):\n%s", got)
	}
	if !strings.Contains(got, "10.99.0.0/16") || !strings.Contains(got, "10.88.0.1/32") {
		t.Errorf("SyncPools(Pools{}) removed state not flock's:\n%s", got)
	}

	if err := n.k.SyncPools(Pools{Pool4: netip.MustParsePrefix("10.0.0.0/31")}); err == nil {
		t.Errorf("SyncPools accepted a /31 IPv4 pool")
	}
}

// kernelEvents counts route and address changes in n's namespace while f
// runs. It ends with a change of its own so that it knows when it has seen
// everything f caused. The kernel's own IPv6 link-local setup (fe80::/64
// and ff00::/8 routes and fe80:: addresses when a link comes up, which can land late on
// a busy machine) is not counted: flock never writes those.
func kernelEvents(t *testing.T, n *testNode, f func()) int {
	t.Helper()
	ns, err := netns.GetFromPath(testns.Path(n.ns))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	done := make(chan struct{})
	defer close(done)
	routes := make(chan netlink.RouteUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	if err := netlink.RouteSubscribeAt(ns, routes, done); err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrSubscribeAt(ns, addrs, done); err != nil {
		t.Fatal(err)
	}
	f()
	// Each subscription is its own socket, ordered in itself: one sentinel
	// each.
	const sentinel = "192.0.2.254/32"
	testns.Run(t, "ip", "-n", n.ns, "route", "add", "blackhole", sentinel)
	defer testns.Run(t, "ip", "-n", n.ns, "route", "del", "blackhole", sentinel)
	testns.Run(t, "ip", "-n", n.ns, "addr", "add", sentinel, "dev", "lo", "label", "lo:sentinel")
	defer testns.Run(t, "ip", "-n", n.ns, "addr", "del", sentinel, "dev", "lo")
	count := 0
	timeout := time.After(5 * time.Second)
	for routes != nil || addrs != nil {
		select {
		case u := <-routes:
			if u.Dst != nil && u.Dst.String() == sentinel {
				routes = nil
				continue
			}
			if u.Dst != nil && (u.Dst.IP.IsLinkLocalUnicast() || u.Dst.IP.IsMulticast()) {
				t.Logf("kernel link-local route event (not counted): %+v", u)
				continue
			}
			t.Logf("route event: %+v", u)
			count++
		case u := <-addrs:
			if u.LinkAddress.String() == sentinel {
				addrs = nil
				continue
			}
			if u.LinkAddress.IP.IsLinkLocalUnicast() {
				t.Logf("kernel link-local address event (not counted): %+v", u)
				continue
			}
			t.Logf("address event: %+v", u)
			count++
		case <-timeout:
			t.Fatal("sentinel events never came")
		}
	}
	return count
}

func TestHostIfacesOnlyFlockVeths(t *testing.T) {
	requireRoot(t)
	n := newNode(t)
	a := attachment(t, "listed", 0x90, 90)
	n.setup(t, a)
	testns.Run(t, "ip", "-n", n.ns, "link", "add", HostIfaceName("a-dummy"), "type", "bridge")
	testns.Run(t, "ip", "-n", n.ns, "link", "add", "flockveth0", "type", "veth", "peer", "name", "flockveth1")
	got, err := n.k.HostIfaces()
	if err != nil || len(got) != 1 || got[0] != a.hostIface() {
		t.Errorf("HostIfaces() = %v, %v; want [%s]", got, err, a.hostIface())
	}
}

func BenchmarkSetupTeardown(b *testing.B) {
	requireRoot(b)
	n := newNode(b)
	a := attachment(b, "bench", 0xb0, 0xb0)
	for b.Loop() {
		if _, err := n.k.Setup(a); err != nil {
			b.Fatal(err)
		}
		if err := n.k.Teardown(a); err != nil {
			b.Fatal(err)
		}
	}
}
