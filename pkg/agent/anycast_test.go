package agent

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/anycast"
	"github.com/fritzlab/flock/pkg/model"
)

type fakeReady map[string]bool

func (f fakeReady) PodReady(ns, name string) bool { return f[ns+"/"+name] }

// events records kernel syncs and announcements in order.
type events struct{ log []string }

type fakeAnycastKernel struct{ ev *events }

func (k fakeAnycastKernel) SyncAnycast(d map[netip.Addr][]anycast.NextHop) error {
	k.ev.log = append(k.ev.log, "kernel "+fmt.Sprint(anycast.Active(d))+" "+hops(d))
	return nil
}

func hops(d map[netip.Addr][]anycast.NextHop) string {
	var s []string
	for _, a := range anycast.Active(d) {
		s = append(s, fmt.Sprint(len(d[a])))
	}
	return strings.Join(s, ",")
}

type fakeAnnouncer struct{ ev *events }

func (f fakeAnnouncer) SetAnycast(a []netip.Addr) {
	f.ev.log = append(f.ev.log, "announce "+fmt.Sprint(a))
}

func TestAnycastReconciler(t *testing.T) {
	e := newEnv(t)
	e.src.node.AnycastAllowed = []netip.Prefix{netip.MustParsePrefix("2001:db8:ffff::/48")}
	for _, name := range []string{"a", "b"} {
		e.src.pods["default/"+name] = &model.Pod{Namespace: "default", Name: name, Annotations: map[string]string{
			"flock.fritzlab.net/anycast": "2001:db8:ffff::53"}}
	}
	ready := fakeReady{}
	ev := &events{}
	r := e.a.NewAnycastReconciler(ready, fakeAnycastKernel{ev}, fakeAnnouncer{ev})
	e.add("a")
	e.add("b")
	step := func(want ...string) {
		t.Helper()
		ev.log = nil
		r.Reconcile(false)
		if fmt.Sprint(ev.log) != fmt.Sprint(want) {
			t.Errorf("got %q, want %q", ev.log, want)
		}
	}
	// Nothing Ready: nothing routed or announced.
	step("kernel [] ", "announce []")
	// One Ready pod: routed first, then announced.
	ready["default/a"] = true
	step("kernel [2001:db8:ffff::53] 1", "announce [2001:db8:ffff::53]")
	// Both: two next hops, the same announcement.
	ready["default/b"] = true
	step("kernel [2001:db8:ffff::53] 2", "announce [2001:db8:ffff::53]")
	// State reports what was applied and announced, as a copy.
	st := r.State()
	addr := netip.MustParseAddr("2001:db8:ffff::53")
	if len(st.Routes) != 1 || len(st.Routes[addr]) != 2 || fmt.Sprint(st.Announced) != "[2001:db8:ffff::53]" || !st.BGP {
		t.Errorf("State() = %+v, want one route with two next hops, announced", st)
	}
	st.Routes[addr][0].Dev = "changed"
	if r.State().Routes[addr][0].Dev == "changed" {
		t.Error("State() shares its next hops with the reconciler")
	}
	// A quiet run does nothing.
	step()
	// None Ready: withdrawn from BGP before the route goes.
	ready["default/a"], ready["default/b"] = false, false
	step("announce []", "kernel [] ")
	if st := r.State(); len(st.Routes) != 0 || len(st.Announced) != 0 {
		t.Errorf("State() after withdrawal = %+v, want nothing routed or announced", st)
	}
	// ADD and DEL poke the reconciler.
	select {
	case <-r.poke:
	default:
		t.Error("ADD of an anycast pod did not poke the reconciler")
	}
}
