package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// Two pods on one node reach each other over both families through the
// host; CHECK passes; DEL leaves nothing behind.
func TestAddPingCheckDel(t *testing.T) {
	n := startNode(t)
	l := conflist(t, n)
	a, b := newPod(t, "default", "a"), newPod(t, "default", "b")
	add(t, n, l, a)
	add(t, n, l, b)
	a6, a4 := a.addrs()
	b6, b4 := b.addrs()
	for _, ip := range []netip.Addr{a6, b6} {
		if !pool6.Contains(ip) {
			t.Errorf("IPv6 %s outside pool %s", ip, pool6)
		}
	}
	for _, ip := range []netip.Addr{a4, b4} {
		if !pool4.Contains(ip) {
			t.Errorf("IPv4 %s outside pool %s", ip, pool4)
		}
	}
	ping(t, a.ns, b6)
	ping(t, a.ns, b4)
	ping(t, b.ns, a6)
	ping(t, b.ns, a4)
	ping(t, n.NS, a6)
	ping(t, n.NS, a4)

	if err := n.Check(ctx(t), l, a.rt); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	// CHECK notices a broken data path.
	if _, err := a.ns.Run("ip", "-6", "route", "del", "default"); err != nil {
		t.Fatal(err)
	}
	if err := n.Check(ctx(t), l, a.rt); err == nil {
		t.Error("CHECK passed without the pod's IPv6 default route")
	}
	for _, p := range []*pod{a, b} {
		if err := n.Del(ctx(t), l, p.rt); err != nil {
			t.Errorf("DEL: %v", err)
		}
	}
	assertClean(t, n)
}

// The result is complete and well-formed in every CNI version flock speaks.
func TestVersions(t *testing.T) {
	n := startNode(t)
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			l, err := n.FlockConflist(v)
			if err != nil {
				t.Fatal(err)
			}
			p := newPod(t, "default", "v"+strings.ReplaceAll(v, ".", ""))
			r, err := n.Add(ctx(t), l, p.rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if r.Version() != v {
				t.Errorf("result version %s, want %s", r.Version(), v)
			}
			var raw struct {
				Interfaces []struct{ Name, Mac, Sandbox string }
				IPs        []struct {
					Address, Gateway string
					Interface        *int
				}
				Routes []struct{ Dst, GW string }
			}
			b, _ := json.Marshal(r)
			json.Unmarshal(b, &raw)
			if len(raw.Interfaces) != 2 || raw.Interfaces[1].Name != "eth0" || raw.Interfaces[1].Sandbox != p.ns.Path || raw.Interfaces[1].Mac == "" {
				t.Errorf("interfaces: %s", b)
			}
			if len(raw.IPs) != 2 || len(raw.Routes) != 2 {
				t.Errorf("want 2 IPs and 2 routes: %s", b)
			}
			for _, ip := range raw.IPs {
				if ip.Interface == nil || *ip.Interface != 1 || ip.Gateway == "" {
					t.Errorf("IP without interface index 1 or gateway: %s", b)
				}
			}
			if err := n.Check(ctx(t), l, p.rt); err != nil && v != "0.3.0" && v != "0.3.1" {
				t.Errorf("CHECK: %v", err)
			}
			if err := n.Del(ctx(t), l, p.rt); err != nil {
				t.Errorf("DEL: %v", err)
			}
		})
	}
	assertClean(t, n)
}

func TestDelIdempotent(t *testing.T) {
	n := startNode(t)
	l := conflist(t, n)
	p := newPod(t, "default", "twice")
	add(t, n, l, p)
	for i := range 2 {
		if err := n.Del(ctx(t), l, p.rt); err != nil {
			t.Errorf("DEL #%d: %v", i+1, err)
		}
	}
	never := newPod(t, "default", "never")
	if err := n.Del(ctx(t), l, never.rt); err != nil {
		t.Errorf("DEL of a never-added pod: %v", err)
	}
	// DEL once the pod's namespace is gone, as after a node-level cleanup.
	gone := newPod(t, "default", "gone")
	add(t, n, l, gone)
	gone.ns.Close()
	if err := n.Del(ctx(t), l, gone.rt); err != nil {
		t.Errorf("DEL with the netns gone: %v", err)
	}
	assertClean(t, n)
}

func TestAgentDown(t *testing.T) {
	n := startNode(t)
	l := conflist(t, n)
	if err := n.Status(ctx(t), l); err != nil {
		t.Errorf("STATUS with the agent up: %v", err)
	}
	n.StopAgent(false)
	p := newPod(t, "default", "down")
	_, err := n.Add(ctx(t), l, p.rt)
	if code := cniCode(err); code != int(types.ErrTryAgainLater) {
		t.Errorf("ADD with the agent down: code %d (%v), want %d", code, err, types.ErrTryAgainLater)
	}
	if err := n.Status(ctx(t), l); cniCode(err) != int(types.ErrPluginNotAvailable) {
		t.Errorf("STATUS with the agent down: %v, want code %d", err, types.ErrPluginNotAvailable)
	}
	if err := n.StartAgent(); err != nil {
		t.Fatal(err)
	}
	// Without a NodeConfig the agent is up but cannot serve ADD.
	os.Remove(filepath.Join(n.Dir, "nodeconfig.yaml"))
	if err := n.Status(ctx(t), l); cniCode(err) != int(types.ErrPluginNotAvailable) {
		t.Errorf("STATUS without a NodeConfig: %v, want code %d", err, types.ErrPluginNotAvailable)
	}
	_, err = n.Add(ctx(t), l, p.rt)
	if err == nil || !strings.Contains(err.Error(), "NodeConfig") {
		t.Errorf("ADD without a NodeConfig: %v, want an error naming the NodeConfig", err)
	}
	assertClean(t, n)
}

// Fifty pods added at once get distinct addresses and are all reachable.
func TestParallelAdds(t *testing.T) {
	n := startNode(t)
	l := conflist(t, n)
	const count = 50
	pods := make([]*pod, count)
	for i := range pods {
		pods[i] = newPod(t, "par", fmt.Sprintf("p%d", i))
	}
	var wg sync.WaitGroup
	errs := make([]error, count)
	for i, p := range pods {
		wg.Go(func() {
			r, err := n.Add(ctx(t), l, p.rt)
			if err == nil {
				p.res, err = toCurrent(r)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, p := range pods {
		if errs[i] != nil {
			t.Fatalf("ADD %d: %v", i, errs[i])
		}
		v6, v4 := p.addrs()
		for _, ip := range []netip.Addr{v6, v4} {
			if j, dup := seen[ip]; dup {
				t.Errorf("%s given to pods %d and %d", ip, j, i)
			}
			seen[ip] = i
		}
	}
	for _, p := range pods {
		wg.Go(func() {
			v6, v4 := p.addrs()
			ping(t, n.NS, v6)
			ping(t, n.NS, v4)
		})
	}
	wg.Wait()
	ping(t, pods[0].ns, func() netip.Addr { v6, _ := pods[count-1].addrs(); return v6 }())
	for _, p := range pods {
		wg.Go(func() {
			if err := n.Del(ctx(t), l, p.rt); err != nil {
				t.Errorf("DEL: %v", err)
			}
		})
	}
	wg.Wait()
	assertClean(t, n)
}

// An agent killed between ADD and DEL comes back with its allocations: DEL
// still cleans up, and a new ADD never reuses the live address.
func TestAgentRestart(t *testing.T) {
	n := startNode(t)
	l := conflist(t, n)
	a := newPod(t, "default", "before")
	add(t, n, l, a)
	n.StopAgent(true)
	if err := n.StartAgent(); err != nil {
		t.Fatal(err)
	}
	b := newPod(t, "default", "after")
	add(t, n, l, b)
	a6, a4 := a.addrs()
	b6, b4 := b.addrs()
	if a6 == b6 || a4 == b4 {
		t.Errorf("restarted agent reused a live address: %s %s / %s %s", a6, a4, b6, b4)
	}
	ping(t, b.ns, a6)
	ping(t, b.ns, a4)
	if err := n.Check(ctx(t), l, a.rt); err != nil {
		t.Errorf("CHECK after restart: %v", err)
	}
	for _, p := range []*pod{a, b} {
		if err := n.Del(ctx(t), l, p.rt); err != nil {
			t.Errorf("DEL: %v", err)
		}
	}
	assertClean(t, n)
}

// portmap, chained after flock, accepts flock's result and sets up (and
// removes) its rules inside the node.
func TestPortmapChained(t *testing.T) {
	n := startNode(t)
	l := conflist(t, n, map[string]any{
		"type": "portmap", "backend": "nftables", "capabilities": map[string]bool{"portMappings": true},
	})
	p := newPod(t, "default", "web")
	p.rt.CapabilityArgs = map[string]any{"portMappings": []map[string]any{
		{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"},
	}}
	add(t, n, l, p)
	out, err := n.NS.Run("nft", "list", "ruleset")
	if err != nil || !strings.Contains(out, "18080") {
		t.Errorf("portmap rules missing from the node (%v):\n%s", err, out)
	}
	if err := n.Check(ctx(t), l, p.rt); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := n.Del(ctx(t), l, p.rt); err != nil {
		t.Errorf("DEL: %v", err)
	}
	assertClean(t, n)
}

// GC releases every attachment the runtime no longer lists.
func TestGC(t *testing.T) {
	n := startNode(t)
	l := conflist(t, n)
	keep, drop := newPod(t, "default", "keep"), newPod(t, "default", "drop")
	add(t, n, l, keep)
	add(t, n, l, drop)
	if err := n.GC(ctx(t), l, []types.GCAttachment{{ContainerID: keep.rt.ContainerID, IfName: "eth0"}}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if err := n.Check(ctx(t), l, keep.rt); err != nil {
		t.Errorf("kept pod broken by GC: %v", err)
	}
	if err := n.Check(ctx(t), l, drop.rt); err == nil {
		t.Error("dropped pod still passes CHECK after GC")
	}
	if err := n.Del(ctx(t), l, keep.rt); err != nil {
		t.Error(err)
	}
	assertClean(t, n)
}

// Annotations steer families and ranges; impossible requests fail cleanly.
func TestAnnotations(t *testing.T) {
	n := startNode(t)
	l := conflist(t, n)
	n.WritePod("default", "v6only", "", map[string]string{"flock.fritzlab.net/ipv4": "false"})
	n.WritePod("default", "sub", "", map[string]string{"flock.fritzlab.net/cidr6": "2001:db8:f10c:1:0:1::/96", "flock.fritzlab.net/ip-algo": "hash"})
	n.WritePod("default", "none", "", map[string]string{"flock.fritzlab.net/ipv4": "false", "flock.fritzlab.net/ipv6": "false"})
	n.WritePod("default", "elsewhere", "", map[string]string{"flock.fritzlab.net/cidr4": "203.0.113.0/24"})

	v6only := newPod(t, "default", "v6only")
	add(t, n, l, v6only)
	if v6, v4 := v6only.addrs(); !v6.IsValid() || v4.IsValid() {
		t.Errorf("ipv4=false pod got %s %s", v6, v4)
	}
	sub := newPod(t, "default", "sub")
	add(t, n, l, sub)
	if v6, _ := sub.addrs(); !netip.MustParsePrefix("2001:db8:f10c:1:0:1::/96").Contains(v6) {
		t.Errorf("cidr6 subnet pod got %s", v6)
	}
	for _, name := range []string{"none", "elsewhere"} {
		p := newPod(t, "default", name)
		if _, err := n.Add(ctx(t), l, p.rt); err == nil || !strings.Contains(err.Error(), "flock.fritzlab.net/") {
			t.Errorf("ADD %s: %v, want an error naming the annotation", name, err)
		}
	}
	for _, p := range []*pod{v6only, sub} {
		if err := n.Del(ctx(t), l, p.rt); err != nil {
			t.Error(err)
		}
	}
	assertClean(t, n)
}

// A bad network config is refused before anything is done.
func TestBadNetworkConfig(t *testing.T) {
	n := startNode(t)
	for _, bad := range []map[string]any{
		{"type": "flock", "socket": "relative/agent.sock"},
		{"type": "flock", "socket": n.Socket, "mtu": 70000},
		{"type": "flock", "socket": n.Socket, "timeoutSeconds": -1},
	} {
		l, err := cnitestConflist(bad)
		if err != nil {
			t.Fatal(err)
		}
		p := newPod(t, "default", "bad")
		_, err = n.Add(ctx(t), l, p.rt)
		if cniCode(err) != int(types.ErrInvalidNetworkConfig) {
			t.Errorf("ADD with %v: %v, want code %d", bad, err, types.ErrInvalidNetworkConfig)
		}
	}
	assertClean(t, n)
}

func cnitestConflist(plugin map[string]any) (*libcni.NetworkConfigList, error) {
	b, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "bad", "plugins": []any{plugin}})
	return libcni.NetworkConfFromBytes(b)
}
