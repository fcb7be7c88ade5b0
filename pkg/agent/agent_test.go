package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/rpc"
	"github.com/fritzlab/flock/pkg/store"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

type env struct {
	t     *testing.T
	dir   string
	src   *fakeSource
	rec   *fakeRecorder
	dp    *fakeDatapath
	store *store.Store
	a     *Agent
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), rec: &fakeRecorder{}, dp: newFakeDatapath()}
	e.src = &fakeSource{pods: map[string]*model.Pod{}, node: &model.Node{
		Name:  "test",
		Pool6: netip.MustParsePrefix("2001:db8:42:1::/64"),
		Pool4: netip.MustParsePrefix("10.42.1.0/29"),
	}}
	e.restart()
	return e
}

// restart builds a fresh agent over the same store directory, as after a
// crash of the agent process.
func (e *env) restart() {
	st, err := store.Open(e.dir, store.Options{}, discard)
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = st
	e.a = New(e.src, e.rec, e.dp, st, discard)
}

func req(op rpc.Op, id string) *rpc.Request {
	return &rpc.Request{Op: op, ContainerID: id, IfName: "eth0", Netns: "/run/netns/" + id,
		Args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + id}
}

func (e *env) add(id string) *current.Result {
	e.t.Helper()
	resp := e.a.Handle(context.Background(), req(rpc.OpAdd, id))
	if resp.Error != nil {
		e.t.Fatalf("ADD %s: %v", id, resp.Error)
	}
	return resp.Result
}

func ips(r *current.Result) (out []string) {
	for _, ip := range r.IPs {
		out = append(out, ip.Address.String())
	}
	return out
}

func TestAddDel(t *testing.T) {
	e := newEnv(t)
	res := e.add("a")
	if got := ips(res); len(got) != 2 || !strings.HasSuffix(got[0], "/128") || !strings.HasSuffix(got[1], "/32") {
		t.Errorf("ADD result IPs %v, want one /128 and one /32", got)
	}
	if res.IPs[1].Gateway.String() != "10.42.1.1" || res.IPs[0].Gateway.String() != "fe80::1" {
		t.Errorf("gateways %v %v", res.IPs[0].Gateway, res.IPs[1].Gateway)
	}
	if len(res.Interfaces) != 2 || res.Interfaces[1].Sandbox != "/run/netns/a" || *res.IPs[0].Interface != 1 {
		t.Errorf("interfaces %+v", res.Interfaces)
	}
	if e.dp.pools.Pool4.String() != "10.42.1.0/29" {
		t.Errorf("pool routes not synced: %+v", e.dp.pools)
	}
	if _, ok := e.store.Get(store.Key{ContainerID: "a", IfName: "eth0"}); !ok {
		t.Error("allocation not persisted")
	}
	for i := range 2 {
		if resp := e.a.Handle(context.Background(), req(rpc.OpDel, "a")); resp.Error != nil {
			t.Errorf("DEL #%d: %v", i+1, resp.Error)
		}
	}
	if len(e.store.List()) != 0 || len(e.dp.up) != 0 || e.a.alloc.Used() != 0 {
		t.Errorf("state left after DEL: store %v, kernel %v, ipam %d", e.store.List(), e.dp.up, e.a.alloc.Used())
	}
}

// A /29 has five pod addresses (network, gateway, broadcast excluded); the
// sixth ADD fails and leaves nothing behind; DEL frees one for reuse.
func TestExhaustionAndReuse(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.add(fmt.Sprintf("p%d", i))
	}
	resp := e.a.Handle(context.Background(), req(rpc.OpAdd, "p5"))
	if resp.Error == nil || resp.Error.Code != rpc.ErrAllocate || !strings.Contains(resp.Error.Details, "10.42.1.0/29") {
		t.Fatalf("ADD into a full pool: %+v", resp.Error)
	}
	if e.a.Exhausted() != 1 || len(e.rec.warnings) != 1 || !strings.Contains(e.rec.warnings[0], "10.42.1.0/29") {
		t.Errorf("exhaustion: counter %d, warnings %q; want 1 and one naming the pool", e.a.Exhausted(), e.rec.warnings)
	}
	if len(e.store.List()) != 5 || len(e.dp.up) != 5 {
		t.Errorf("failed ADD left state: %d allocations, %d veths", len(e.store.List()), len(e.dp.up))
	}
	e.a.Handle(context.Background(), req(rpc.OpDel, "p2"))
	e.add("p5")
}

func TestAddRollsBack(t *testing.T) {
	e := newEnv(t)
	e.dp.failSetup = errors.New("kernel says no")
	resp := e.a.Handle(context.Background(), req(rpc.OpAdd, "a"))
	if resp.Error == nil || resp.Error.Code != rpc.ErrDatapath || !strings.Contains(resp.Error.Details, "kernel says no") {
		t.Fatalf("ADD with a failing data path: %+v", resp.Error)
	}
	if len(e.store.List()) != 0 || e.a.alloc.Used() != 0 {
		t.Errorf("failed ADD left an allocation: %v, ipam %d", e.store.List(), e.a.alloc.Used())
	}
}

func TestAddErrors(t *testing.T) {
	e := newEnv(t)
	e.src.pods["default/off"] = &model.Pod{Namespace: "default", Name: "off", Annotations: map[string]string{
		"flock.fritzlab.net/ipv6": "false", "flock.fritzlab.net/ipv4": "false"}}
	e.src.pods["default/typo"] = &model.Pod{Namespace: "default", Name: "typo", Annotations: map[string]string{
		"flock.fritzlab.net/ipv4": "nope"}}
	noArgs := req(rpc.OpAdd, "x")
	noArgs.Args = "K8S_POD_NAMESPACE=default"
	for _, tc := range []struct {
		req  *rpc.Request
		code uint
		want string
	}{
		{noArgs, types.ErrInvalidEnvironmentVariables, "K8S_POD_NAME"},
		{req(rpc.OpAdd, "off"), rpc.ErrAllocate, "flock.fritzlab.net/ipv4"},
	} {
		resp := e.a.Handle(context.Background(), tc.req)
		if resp.Error == nil || resp.Error.Code != tc.code || !strings.Contains(resp.Error.Error(), tc.want) {
			t.Errorf("ADD %s: %+v, want code %d naming %q", tc.req.ContainerID, resp.Error, tc.code, tc.want)
		}
	}
	// An invalid annotation falls through with a warning to the pod.
	res := e.add("typo")
	if len(res.IPs) != 2 || len(e.rec.warnings) != 1 || !strings.Contains(e.rec.warnings[0], `flock.fritzlab.net/ipv4="nope"`) {
		t.Errorf("typo pod: IPs %v, warnings %q", ips(res), e.rec.warnings)
	}
	// Without a NodeConfig, ADD says so and STATUS fails.
	e.src.node = nil
	e.restart()
	resp := e.a.Handle(context.Background(), req(rpc.OpAdd, "late"))
	if resp.Error == nil || resp.Error.Code != rpc.ErrNoNodeConfig || !strings.Contains(resp.Error.Error(), "node test") {
		t.Errorf("ADD without a NodeConfig: %+v", resp.Error)
	}
	if resp := e.a.Handle(context.Background(), &rpc.Request{Op: rpc.OpStatus}); resp.Error == nil || resp.Error.Code != types.ErrPluginNotAvailable {
		t.Errorf("STATUS without a NodeConfig: %+v", resp.Error)
	}
}

// A restarted agent knows every allocation on disk: it never hands one out
// again, and DEL and CHECK still work.
func TestRestart(t *testing.T) {
	e := newEnv(t)
	first := ips(e.add("a"))
	e.restart()
	second := ips(e.add("b"))
	if first[0] == second[0] || first[1] == second[1] {
		t.Errorf("restarted agent reused an address: %v then %v", first, second)
	}
	if resp := e.a.Handle(context.Background(), req(rpc.OpDel, "a")); resp.Error != nil {
		t.Fatal(resp.Error)
	}
	if _, ok := e.dp.up[datapath.HostIfaceName("a")]; ok {
		t.Error("DEL after restart left the veth")
	}
}

// A repeated ADD of a live attachment keeps its addresses.
func TestRepeatedAdd(t *testing.T) {
	e := newEnv(t)
	first := ips(e.add("a"))
	again := ips(e.add("a"))
	if fmt.Sprint(first) != fmt.Sprint(again) || e.a.alloc.Used() != 2 {
		t.Errorf("repeated ADD: %v then %v, %d addresses used", first, again, e.a.alloc.Used())
	}
}

func TestDelKeepsAllocationWhenTeardownFails(t *testing.T) {
	e := newEnv(t)
	e.add("a")
	e.dp.failTeardow = errors.New("busy")
	if resp := e.a.Handle(context.Background(), req(rpc.OpDel, "a")); resp.Error == nil {
		t.Fatal("DEL succeeded though teardown failed")
	}
	if len(e.store.List()) != 1 {
		t.Error("allocation dropped though its veth may still exist; a retried DEL could not clean up")
	}
	e.dp.failTeardow = nil
	if resp := e.a.Handle(context.Background(), req(rpc.OpDel, "a")); resp.Error != nil {
		t.Errorf("retried DEL: %v", resp.Error)
	}
}

func TestCheck(t *testing.T) {
	e := newEnv(t)
	res := e.add("a")
	check := req(rpc.OpCheck, "a")
	check.PrevResult = res
	if resp := e.a.Handle(context.Background(), check); resp.Error != nil {
		t.Errorf("CHECK: %v", resp.Error)
	}
	other := e.add("b")
	check.PrevResult = other
	if resp := e.a.Handle(context.Background(), check); resp.Error == nil || resp.Error.Code != rpc.ErrCheck {
		t.Errorf("CHECK with another pod's result: %+v", resp.Error)
	}
	unknown := req(rpc.OpCheck, "zzz")
	unknown.PrevResult = res
	if resp := e.a.Handle(context.Background(), unknown); resp.Error == nil || resp.Error.Code != types.ErrUnknownContainer {
		t.Errorf("CHECK of an unknown container: %+v", resp.Error)
	}
}

func TestGC(t *testing.T) {
	e := newEnv(t)
	e.add("keep")
	e.add("drop")
	e.dp.stray = []string{"flock00000000"}
	gc := &rpc.Request{Op: rpc.OpGC, ValidAttachments: []rpc.Attachment{{ContainerID: "keep", IfName: "eth0"}}}
	if resp := e.a.Handle(context.Background(), gc); resp.Error != nil {
		t.Fatal(resp.Error)
	}
	left, _ := e.dp.HostIfaces()
	if len(e.store.List()) != 1 || len(left) != 1 || left[0] != datapath.HostIfaceName("keep") {
		t.Errorf("after GC: allocations %v, veths %v", e.store.List(), left)
	}
}

func TestParallelAdds(t *testing.T) {
	e := newEnv(t)
	e.src.node.Pool4 = netip.MustParsePrefix("10.42.0.0/22")
	var wg sync.WaitGroup
	results := make([]*current.Result, 200)
	for i := range results {
		wg.Go(func() {
			resp := e.a.Handle(context.Background(), req(rpc.OpAdd, fmt.Sprintf("p%d", i)))
			if resp.Error != nil {
				t.Error(resp.Error)
				return
			}
			results[i] = resp.Result
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, r := range results {
		for _, ip := range ips(r) {
			if seen[ip] {
				t.Errorf("%s handed out twice", ip)
			}
			seen[ip] = true
		}
	}
}

// Accepted anycast addresses go on the pod's lo and into its allocation;
// rejected ones are warned about and skipped.
func TestAddAnycast(t *testing.T) {
	e := newEnv(t)
	e.src.node.AnycastAllowed = []netip.Prefix{netip.MustParsePrefix("2001:db8:ffff::/48"), netip.MustParsePrefix("192.0.2.128/25")}
	e.src.pods["default/svc"] = &model.Pod{Namespace: "default", Name: "svc", Annotations: map[string]string{
		"flock.fritzlab.net/anycast": "2001:db8:ffff::53, 192.0.2.153, 203.0.113.9"}}
	e.add("svc")
	want := []netip.Addr{netip.MustParseAddr("192.0.2.153"), netip.MustParseAddr("2001:db8:ffff::53")}
	rec, _ := e.store.Get(store.Key{ContainerID: "svc", IfName: "eth0"})
	if fmt.Sprint(rec.Anycast) != fmt.Sprint(want) || fmt.Sprint(e.dp.anycast["/run/netns/svc"]) != fmt.Sprint(want) {
		t.Errorf("anycast: record %v, pod lo %v, want %v", rec.Anycast, e.dp.anycast["/run/netns/svc"], want)
	}
	if len(e.rec.warnings) != 1 || !strings.Contains(e.rec.warnings[0], "203.0.113.9") {
		t.Errorf("warnings %q, want one naming 203.0.113.9", e.rec.warnings)
	}
}

type fakePolicy struct {
	added, deleted []string
	fail           error
	dp             *fakeDatapath
	vethAtAdd      bool
}

func (p *fakePolicy) PodAdded(_ context.Context, pod *model.Pod, iface string, ips []netip.Addr) error {
	p.added = append(p.added, fmt.Sprintf("%s %s %v", pod.Key(), iface, ips))
	_, p.vethAtAdd = p.dp.up[iface]
	return p.fail
}

func (p *fakePolicy) PodDeleted(_ context.Context, ns, name string) {
	p.deleted = append(p.deleted, ns+"/"+name)
}

// The pod's policy is in place before its data path exists, and a policy
// that cannot be applied fails the ADD without leaving anything behind.
func TestAddPolicyFirst(t *testing.T) {
	e := newEnv(t)
	p := &fakePolicy{dp: e.dp}
	e.a.SetPolicy(p)
	e.add("a")
	if len(p.added) != 1 || p.vethAtAdd {
		t.Errorf("policy calls %v, veth existed at PodAdded: %v", p.added, p.vethAtAdd)
	}
	e.a.Handle(context.Background(), req(rpc.OpDel, "a"))
	if fmt.Sprint(p.deleted) != "[default/a]" {
		t.Errorf("PodDeleted calls %v", p.deleted)
	}
	p.fail = errors.New("nft refused")
	resp := e.a.Handle(context.Background(), req(rpc.OpAdd, "b"))
	if resp.Error == nil || !strings.Contains(resp.Error.Error(), "nft refused") {
		t.Fatalf("ADD with a failing policy: %+v", resp.Error)
	}
	if len(e.store.List()) != 0 || len(e.dp.up) != 0 || e.a.alloc.Used() != 0 {
		t.Errorf("failed ADD left state")
	}
}
