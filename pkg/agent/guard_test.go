package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/annotations"
	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/rpc"
	"github.com/fritzlab/flock/pkg/store"
)

type fakeGuard struct {
	last      []PodSources
	calls     int
	vethAtAdd map[string]bool
	dp        *fakeDatapath
	fail      error
}

func (g *fakeGuard) Allow(_ context.Context, pods []PodSources) error {
	g.calls++
	if g.fail != nil {
		return g.fail
	}
	g.last = pods
	for _, p := range pods {
		if _, ok := g.vethAtAdd[p.Iface]; !ok {
			_, g.vethAtAdd[p.Iface] = g.dp.up[p.Iface]
		}
	}
	return nil
}

func (g *fakeGuard) Resync(context.Context) error { return nil }

// A pod's sources (eth0 addresses and granted anycast) are allowed before
// its veth exists, and only while it exists; a guard that cannot be loaded
// fails the ADD and leaves nothing behind.
func TestAddGuardFirst(t *testing.T) {
	e := newEnv(t)
	g := &fakeGuard{dp: e.dp, vethAtAdd: map[string]bool{}}
	e.a.SetGuard(g)
	e.src.node.AnycastAllowed = []netip.Prefix{netip.MustParsePrefix("2001:db8:ffff::/48")}
	e.src.pods["default/svc"] = &model.Pod{Namespace: "default", Name: "svc", Annotations: map[string]string{"flock.fritzlab.net/anycast": "2001:db8:ffff::53"}}
	res := e.add("svc")
	e.add("b")
	if len(g.last) != 2 {
		t.Fatalf("guard has %d pods, want 2: %v", len(g.last), g.last)
	}
	for iface, existed := range g.vethAtAdd {
		if existed {
			t.Errorf("veth %s existed before its sources were allowed", iface)
		}
	}
	var svc PodSources
	for _, p := range g.last {
		if p.Iface == res.Interfaces[0].Name {
			svc = p
		}
	}
	want := fmt.Sprint([]string{strings.TrimSuffix(res.IPs[0].Address.String(), "/128"), strings.TrimSuffix(res.IPs[1].Address.String(), "/32"), "2001:db8:ffff::53"})
	if got := fmt.Sprint(svc.Addrs); got != want {
		t.Errorf("svc sources %v, want %v", svc.Addrs, want)
	}
	e.a.Handle(context.Background(), req(rpc.OpDel, "svc"))
	if len(g.last) != 1 || g.last[0].Iface == svc.Iface {
		t.Errorf("after DEL the guard has %v", g.last)
	}
	g.fail = errors.New("nft refused")
	resp := e.a.Handle(context.Background(), req(rpc.OpAdd, "c"))
	if resp.Error == nil || !strings.Contains(resp.Error.Error(), "anti-spoofing") {
		t.Fatalf("ADD with a failing guard: %+v", resp.Error)
	}
	if len(e.store.List()) != 1 || len(e.dp.up) != 1 {
		t.Errorf("failed ADD left state: store %d, veths %d", len(e.store.List()), len(e.dp.up))
	}
}

type fakeScope struct {
	reserved []annotations.Reserved
	ns       []netip.Prefix
	nsSet    bool
	err      error
}

func (s fakeScope) Reserved(context.Context) ([]annotations.Reserved, error) {
	return s.reserved, s.err
}
func (s fakeScope) NamespaceCIDRs(context.Context, string) ([]netip.Prefix, bool, error) {
	return s.ns, s.nsSet, nil
}

// The scope's reserved ranges and namespace restriction apply; a scope that
// cannot answer grants nothing and says why.
func TestAnycastScope(t *testing.T) {
	e := newEnv(t)
	e.src.node.AnycastAllowed = []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}
	e.src.pods["default/svc"] = &model.Pod{Namespace: "default", Name: "svc", Annotations: map[string]string{
		"flock.fritzlab.net/anycast": "2001:db8:5e5::1,2001:db8:ffff::53,2001:db8:fffe::1"}}
	e.a.SetAnycastScope(fakeScope{
		reserved: []annotations.Reserved{{Prefix: netip.MustParsePrefix("2001:db8:5e5::/112"), What: "the cluster's Service range"}},
		ns:       []netip.Prefix{netip.MustParsePrefix("2001:db8:ffff::/48")}, nsSet: true,
	})
	e.add("svc")
	rec, _ := e.store.Get(store.Key{ContainerID: "svc", IfName: "eth0"})
	if fmt.Sprint(rec.Anycast) != "[2001:db8:ffff::53]" {
		t.Errorf("anycast %v, want [2001:db8:ffff::53]", rec.Anycast)
	}
	if len(e.rec.warnings) != 2 || !strings.Contains(e.rec.warnings[0], "Service range") || !strings.Contains(e.rec.warnings[1], "anycast-cidrs") {
		t.Errorf("warnings %q", e.rec.warnings)
	}
	e.rec.warnings = nil
	e.a.SetAnycastScope(fakeScope{err: errors.New("api down")})
	e.src.pods["default/svc2"] = e.src.pods["default/svc"]
	e.add("svc2")
	rec, _ = e.store.Get(store.Key{ContainerID: "svc2", IfName: "eth0"})
	if len(rec.Anycast) != 0 || len(e.rec.warnings) != 1 || !strings.Contains(e.rec.warnings[0], "api down") {
		t.Errorf("with a failing scope: anycast %v, warnings %q", rec.Anycast, e.rec.warnings)
	}
}
