package lab

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/fritzlab/flock/internal/lab"
)

// anycastPod serves TCP on port and is Ready while the file down does not
// exist (an exec probe), so the test can fail its probe at will.
func anycastPod(name, node, addrs, down string, port int) *corev1.Pod {
	p := servePod("default", name, map[string]string{"flock.fritzlab.net/anycast": addrs}, port)
	p.Spec.NodeName = node
	p.Spec.Containers[0].ReadinessProbe.ProbeHandler = corev1.ProbeHandler{
		Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "test ! -e " + down}},
	}
	return p
}

// nexthops counts the next hops of the route to addr in a namespace (0 when
// there is no route, 1 for a plain via-route).
func nexthops(netns string, addr netip.Addr, extra ...string) int {
	out := route(netns, addr, extra...)
	if strings.TrimSpace(out) == "" {
		return 0
	}
	if n := strings.Count(out, "nexthop"); n > 0 {
		return n
	}
	return 1
}

// route shows the route to addr in a namespace.
func route(netns string, addr netip.Addr, extra ...string) string {
	fam := "-6"
	if addr.Is4() {
		fam = "-4"
	}
	out, _ := inNetns(netns, append([]string{"ip", fam, "route", "show", addr.String()}, extra...)...)
	return out
}

// TestAnycast: three Ready pods serve one IPv6 and one IPv4 anycast
// address, two on node-1 and one on node-2. The router has the addresses
// from both nodes, node-1 one route with two next hops; a client on node-3
// reaches all three over many flows. Failing probes and deleting pods take
// exactly the right next hops and announcements away.
func TestAnycast(t *testing.T) { testAnycast(t, up(t, 3)) }

// TestRealAnycast is TestAnycast on the real node stack: kubelet's own exec
// readiness probes drive the announcements.
func TestRealAnycast(t *testing.T) { testAnycast(t, upWith(t, 3, lab.RuntimeReal)) }

func testAnycast(t *testing.T, e *env) {
	const port = 8080
	any6, any4 := netip.MustParseAddr("2001:db8:ffff::53"), netip.MustParseAddr("192.0.2.53")
	addrs := any6.String() + "," + any4.String()
	dir := t.TempDir()
	down := func(pod string) string { return filepath.Join(dir, pod+".down") }
	servers := map[string]*corev1.Pod{}
	for _, p := range []struct{ name, node string }{{"s1", "node-1"}, {"s2", "node-1"}, {"s3", "node-2"}} {
		servers[p.name] = anycastPod(p.name, p.node, addrs, down(p.name), port)
		e.create(servers[p.name])
	}
	client := servePod("default", "client", nil, port)
	client.Spec.NodeName = "node-3"
	e.create(client)
	for _, n := range []string{"s1", "s2", "s3"} {
		e.waitReady("default", n)
	}
	cl := e.waitReady("default", "client")
	n1, _ := e.lab.NodeNetns("node-1")
	router := e.lab.Router

	for _, a := range []netip.Addr{any6, any4} {
		waitFor(t, 30*time.Second, "router ECMP to "+a.String(), func() (bool, string) {
			out := route(router, a)
			return nexthops(router, a) == 2, out
		})
		waitFor(t, 10*time.Second, "node-1 multipath to "+a.String(), func() (bool, string) {
			out := route(n1, a, "proto", "84")
			return nexthops(n1, a, "proto", "84") == 2, out
		})
		// Many flows from one client reach all three pods.
		seen := map[string]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 48 {
			wg.Go(func() {
				got, err := e.tcpAsk(cl, a, port)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					seen["error"]++
				} else {
					seen[got]++
				}
			})
		}
		wg.Wait()
		for _, p := range []string{"s1", "s2", "s3"} {
			if seen["default/"+p] == 0 {
				t.Errorf("%s: 48 connections never reached %s: %v", a, p, seen)
			}
		}
		if seen["error"] > 0 {
			t.Errorf("%s: %d of 48 connections failed: %v", a, seen["error"], seen)
		}
	}

	// s1's probe fails: node-1 keeps one next hop, the router both nodes.
	e.setFile(servers["s1"], down("s1"), true)
	for _, a := range []netip.Addr{any6, any4} {
		waitFor(t, 15*time.Second, "node-1 drops s1's next hop for "+a.String(), func() (bool, string) {
			out := route(n1, a, "proto", "84")
			return nexthops(n1, a, "proto", "84") == 1, out
		})
		if got := nexthops(router, a); got != 2 {
			t.Errorf("router has %d paths to %s with one pod on node-1 Ready, want 2", got, a)
		}
	}
	// s2's too: node-1 withdraws, node-2 keeps serving.
	e.setFile(servers["s2"], down("s2"), true)
	for _, a := range []netip.Addr{any6, any4} {
		waitFor(t, 15*time.Second, "router withdraws node-1's "+a.String(), func() (bool, string) {
			out := route(router, a)
			return nexthops(router, a) == 1 && strings.Contains(out, viaNode(e, "node-2", a)), out
		})
		if got, err := e.tcpAsk(cl, a, port); err != nil || got != "default/s3" {
			t.Errorf("%s after node-1's pods failed: %q %v, want default/s3", a, got, err)
		}
	}
	// s1 comes back; then deleting it withdraws node-1 again.
	e.setFile(servers["s1"], down("s1"), false)
	for _, a := range []netip.Addr{any6, any4} {
		waitFor(t, 15*time.Second, "router relearns node-1's "+a.String(), func() (bool, string) {
			out := route(router, a)
			return nexthops(router, a) == 2, out
		})
	}
	e.deleteAndWait("default", "s1")
	e.deleteAndWait("default", "s3")
	for _, a := range []netip.Addr{any6, any4} {
		waitFor(t, 15*time.Second, "router withdraws "+a.String()+" after the pods are deleted", func() (bool, string) {
			out := route(router, a)
			return nexthops(router, a) == 0, out
		})
	}
}

// viaNode is the router's next hop towards node for addr's family.
func viaNode(e *env, node string, a netip.Addr) string {
	n, _ := e.lab.Node(node)
	if a.Is4() {
		return fmt.Sprintf("via %s ", n.Addr4.Addr())
	}
	return fmt.Sprintf("via %s ", n.Addr6.Addr())
}
