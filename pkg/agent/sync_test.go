package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/fritzlab/flock/pkg/anycast"
	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/rpc"
)

// TestNothingPrunedBeforeSync: a restarted agent whose source has not
// synced (the API server unreachable) leaves the anycast routes and the
// announcements alone and defers GC; once synced, both run.
func TestNothingPrunedBeforeSync(t *testing.T) {
	e := newEnv(t)
	e.src.node.AnycastAllowed = []netip.Prefix{netip.MustParsePrefix("2001:db8:ffff::/48")}
	e.src.pods["default/a"] = &model.Pod{Namespace: "default", Name: "a", Annotations: map[string]string{
		"flock.fritzlab.net/anycast": "2001:db8:ffff::53"}}
	e.add("a")
	e.add("b")
	e.restart()
	e.src.unsynced = true
	ev := &events{}
	r := e.a.NewAnycastReconciler(fakeReady{}, fakeAnycastKernel{ev}, fakeAnnouncer{ev})
	r.Reconcile(true)
	if len(ev.log) != 0 {
		t.Errorf("before sync the reconciler did %q", ev.log)
	}
	gc := &rpc.Request{Op: rpc.OpGC, ValidAttachments: []rpc.Attachment{{ContainerID: "a", IfName: "eth0"}}}
	resp := e.a.Handle(context.Background(), gc)
	if resp.Error == nil || resp.Error.Code != types.ErrTryAgainLater || len(e.store.List()) != 2 {
		t.Errorf("GC before sync: %+v, %d allocations left; want try again later and both kept", resp.Error, len(e.store.List()))
	}

	e.src.unsynced = false
	r.Reconcile(true)
	// a is not Ready: its address is withdrawn, now that readiness is known.
	if want := fmt.Sprint([]string{"kernel [] ", "announce []"}); fmt.Sprint(ev.log) != want {
		t.Errorf("after sync: %q, want %q", ev.log, want)
	}
	if resp := e.a.Handle(context.Background(), gc); resp.Error != nil || len(e.store.List()) != 1 {
		t.Errorf("GC after sync: %v, %d allocations left, want 1", resp.Error, len(e.store.List()))
	}
}

type failingAnycastKernel struct{ ev *events }

func (k failingAnycastKernel) SyncAnycast(d map[netip.Addr][]anycast.NextHop) error {
	k.ev.log = append(k.ev.log, "kernel failed")
	return errors.New("next hop flockdeadbeef: no such veth")
}

// A kernel sync that keeps failing still gives the announcer its first
// set, which the BGP controller waits for after a restart; later failures
// leave the announcement alone.
func TestAnycastFirstSetDespiteKernelError(t *testing.T) {
	e := newEnv(t)
	// Without allowedCIDRs no pod may claim anycast at all.
	e.src.node.AnycastAllowed = []netip.Prefix{netip.MustParsePrefix("2001:db8:ffff::/48")}
	e.src.pods["default/a"] = &model.Pod{Namespace: "default", Name: "a", Annotations: map[string]string{
		"flock.fritzlab.net/anycast": "2001:db8:ffff::53"}}
	e.add("a")
	ev := &events{}
	r := e.a.NewAnycastReconciler(fakeReady{"default/a": true}, failingAnycastKernel{ev}, fakeAnnouncer{ev})
	r.Reconcile(true)
	r.Reconcile(true)
	if want := fmt.Sprint([]string{"kernel failed", "announce [2001:db8:ffff::53]", "kernel failed"}); fmt.Sprint(ev.log) != want {
		t.Errorf("got %q, want %q", ev.log, want)
	}
}
