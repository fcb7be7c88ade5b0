package netpol

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/policy"
)

// summary is what a test compares of an input's pods: key, local
// interface and labels.
func summary(in *policy.Input) []string {
	var out []string
	for _, p := range in.Pods {
		var labels []string
		for k, v := range p.Labels {
			labels = append(labels, k+"="+v)
		}
		slices.Sort(labels)
		var ips []string
		for _, a := range p.IPs {
			ips = append(ips, a.String())
		}
		out = append(out, p.Key()+" node="+p.Node+" iface="+p.Iface+" ips="+strings.Join(ips, ",")+" labels="+strings.Join(labels, ","))
	}
	slices.Sort(out)
	return out
}

func TestInput(t *testing.T) {
	cl := testCluster()
	cl.in.Pods = append(cl.in.Pods,
		// The informer still has a pod of this node whose DEL is done.
		policy.Pod{Namespace: "x", Name: "gone", UID: "u-g", Node: node, IPs: []netip.Addr{netip.MustParseAddr("2001:db8:1::9")}},
		// and an earlier pod of the name x/b now has.
		policy.Pod{Namespace: "x", Name: "b", UID: "u-b-old", Node: node, Labels: map[string]string{"role": "old"}},
	)
	lo := &fakeLocals{}
	lo.add(record("x", "a", "u-a", "flock0000000a", "2001:db8:1::aa"))
	lo.add(record("x", "b", "u-b", "flock0000000b", "2001:db8:1::b"))
	lo.add(record("x", "orphan", "u-o", "flock0000000f", "2001:db8:1::f"))
	c := New(node, cl, lo, &fakeRules{}, discard)
	c.remember(policy.Pod{Namespace: "x", Name: "stale", UID: "u-s"})

	want := []string{
		// Addresses of local pods are the attachment's, labels the informer's.
		"x/a node=n1 iface=flock0000000a ips=2001:db8:1::aa labels=role=server",
		// The informer's x/b is an earlier pod: no labels known yet.
		"x/b node=n1 iface=flock0000000b ips=2001:db8:1::b labels=",
		"x/orphan node=n1 iface=flock0000000f ips=2001:db8:1::f labels=",
		"x/remote node=n2 iface= ips=2001:db8:2::1 labels=role=client",
	}
	in := c.input(nil, false)
	if d := cmp.Diff(want, summary(in)); d != "" || in.Node != node || len(in.Policies) != 2 || len(in.Namespaces) != 1 {
		t.Errorf("input (-want +got):\n%s", d)
	}
	if _, ok := c.known["x/stale"]; ok {
		t.Error("what PodAdded learnt of a pod without an attachment was kept")
	}

	// What PodAdded learnt of x/b stands in for the informer's.
	c.remember(policy.Pod{Namespace: "x", Name: "b", UID: "u-b", Labels: map[string]string{"role": "client"}})
	want[1] = "x/b node=n1 iface=flock0000000b ips=2001:db8:1::b labels=role=client"
	if d := cmp.Diff(want, summary(c.input(nil, false))); d != "" {
		t.Errorf("input with x/b known (-want +got):\n%s", d)
	}

	// A pod being added, not in the store yet: the only local pod with
	// onlyAdd, one of them without.
	add := &policy.Pod{Namespace: "x", Name: "new", UID: "u-n", Node: node, Iface: "flock0000000c",
		IPs: []netip.Addr{netip.MustParseAddr("2001:db8:1::c")}, Labels: map[string]string{"role": "server"}}
	only := []string{
		"x/a node=n1 iface= ips=2001:db8:1::aa labels=role=server",
		"x/b node=n1 iface= ips=2001:db8:1::b labels=role=client",
		"x/new node=n1 iface=flock0000000c ips=2001:db8:1::c labels=role=server",
		"x/orphan node=n1 iface= ips=2001:db8:1::f labels=",
		"x/remote node=n2 iface= ips=2001:db8:2::1 labels=role=client",
	}
	if d := cmp.Diff(only, summary(c.input(add, true))); d != "" {
		t.Errorf("input for an add (-want +got):\n%s", d)
	}
	all := slices.Clone(want)
	all = append(all, "x/new node=n1 iface=flock0000000c ips=2001:db8:1::c labels=role=server")
	slices.Sort(all)
	if d := cmp.Diff(all, summary(c.input(add, false))); d != "" {
		t.Errorf("input with an add (-want +got):\n%s", d)
	}
}

func TestPodAdded(t *testing.T) {
	ctx := context.Background()
	newPod := &model.Pod{Namespace: "x", Name: "c", UID: "u-c"}
	ip := netip.MustParseAddr("2001:db8:1::c")
	setup := func(r *fakeRules) (*Controller, *fakeCluster) {
		cl := testCluster()
		// The informer knows x/c (a server), not its address yet.
		cl.in.Pods = append(cl.in.Pods, policy.Pod{Namespace: "x", Name: "c", UID: "u-c", Node: node, Labels: map[string]string{"role": "server"}})
		cl.synced.Store(true)
		lo := &fakeLocals{}
		lo.add(record("x", "a", "u-a", "flock0000000a", "2001:db8:1::a"))
		// The agent saves the allocation before it calls PodAdded.
		lo.add(record("x", "c", "u-c", "flock0000000c", ip.String()))
		return New(node, cl, lo, r, discard), cl
	}

	t.Run("not synced: fails closed", func(t *testing.T) {
		r := &fakeRules{addOK: true}
		c, cl := setup(r)
		cl.synced.Store(false)
		err := c.PodAdded(ctx, newPod, "flock0000000c", []netip.Addr{ip})
		if !errors.Is(err, ErrNotSynced) || !strings.Contains(err.Error(), "x/c") {
			t.Errorf("PodAdded before sync = %v", err)
		}
		if calls, _ := r.take(); len(calls) != 0 || cl.gets != 0 {
			t.Errorf("PodAdded before sync called %v and %d GETs", calls, cl.gets)
		}
	})

	t.Run("fast path: the new pod's rules only", func(t *testing.T) {
		r := &fakeRules{addOK: true}
		c, _ := setup(r)
		if err := c.PodAdded(ctx, newPod, "flock0000000c", []netip.Addr{ip}); err != nil {
			t.Fatal(err)
		}
		calls, models := r.take()
		if d := cmp.Diff([]string{"add"}, calls); d != "" {
			t.Fatalf("calls (-want +got):\n%s", d)
		}
		m := models[0]
		if len(m.Pods) != 1 || m.Pods[0].Iface != "flock0000000c" || m.Pods[0].Ingress == nil || m.Pods[0].Egress != nil {
			t.Fatalf("model = %+v", m.Pods)
		}
		in := m.Pods[0].Ingress
		if !in.Permits(netip.MustParseAddr("2001:db8:2::1"), policy.TCP, 80) || in.Permits(netip.MustParseAddr("2001:db8:1::a"), policy.TCP, 80) {
			t.Errorf("x/c's ingress %+v: want the client allowed, x/a denied", in)
		}
		select {
		case <-c.poke:
		default:
			t.Error("PodAdded did not poke the worker for the other pods' rules")
		}
	})

	for name, r := range map[string]*fakeRules{
		"fast path declined": {addOK: false},
		"fast path failed":   {addOK: false, addErr: errors.New("nft: no such table")},
	} {
		t.Run(name+": full apply", func(t *testing.T) {
			c, _ := setup(r)
			if err := c.PodAdded(ctx, newPod, "flock0000000c", []netip.Addr{ip}); err != nil {
				t.Fatal(err)
			}
			wantAddThenFullApply(t, r)
		})
	}

	t.Run("apply fails: the ADD fails", func(t *testing.T) {
		r := &fakeRules{addOK: false, applyErr: errors.New("nft: exit status 1")}
		c, _ := setup(r)
		if err := c.PodAdded(ctx, newPod, "flock0000000c", []netip.Addr{ip}); err == nil || !strings.Contains(err.Error(), "x/c") {
			t.Errorf("PodAdded = %v, want an error naming the pod", err)
		}
	})

	t.Run("labels unknown: the ADD fails", func(t *testing.T) {
		r := &fakeRules{addOK: true}
		c, _ := setup(r)
		if err := c.PodAdded(ctx, &model.Pod{Namespace: "x", Name: "nobody"}, "flock0000000d", []netip.Addr{ip}); err == nil {
			t.Error("PodAdded of a pod the API does not know succeeded")
		}
		if calls, _ := r.take(); len(calls) != 0 {
			t.Errorf("calls %v", calls)
		}
	})
}

// TestRun drives the worker in a bubble of fake time: nothing before the
// caches sync, then a sync per trigger, a drift check every 30 s, and
// retries with backoff after failures.
func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cl := testCluster()
		lo := &fakeLocals{}
		lo.add(record("x", "a", "u-a", "flock0000000a", "2001:db8:1::a"))
		r := &fakeRules{}
		c := New(node, cl, lo, r, discard)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go c.Run(ctx)
		expect := func(what string, want ...string) {
			t.Helper()
			synctest.Wait()
			if calls, _ := r.take(); !slices.Equal(calls, want) {
				t.Errorf("%s: calls %v, want %v", what, calls, want)
			}
		}

		c.Poke()
		time.Sleep(time.Second)
		expect("before the caches synced")
		cl.synced.Store(true)
		time.Sleep(200 * time.Millisecond) // t = 1.2 s
		expect("caches synced", "apply")
		cl.set(func(in *policy.Input) { in.Policies = in.Policies[:1] })
		expect("informer event", "apply")
		c.PodDeleted(ctx, "x", "a")
		expect("pod deleted", "apply")
		time.Sleep(30 * time.Second) // the resync tick came at 31.1 s
		expect("resync tick", "apply", "resync")

		r.failApply(errors.New("nft: exit status 1"))
		c.Poke()
		expect("failing sync", "apply")
		time.Sleep(1100 * time.Millisecond)
		expect("first retry, after 1 s", "apply")
		time.Sleep(1100 * time.Millisecond)
		expect("no retry before 2 s")
		r.failApply(nil)
		time.Sleep(time.Second)
		expect("second retry, after 2 s", "apply")
		time.Sleep(5 * time.Second)
		expect("nothing once it succeeded")
		cancel()
		synctest.Wait()
	})
}

// TestRunBatchesPeerChanges: a burst of changes of peer pods elsewhere
// costs one sync per MinPeerInterval, while a change of a policy or of
// the node's own pods still syncs at once.
func TestRunBatchesPeerChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cl := testCluster()
		cl.synced.Store(true)
		r := &fakeRules{}
		c := New(node, cl, &fakeLocals{}, r, discard)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go c.Run(ctx)
		expect := func(what string, want ...string) {
			t.Helper()
			synctest.Wait()
			if calls, _ := r.take(); !slices.Equal(calls, want) {
				t.Errorf("%s: calls %v, want %v", what, calls, want)
			}
		}
		expect("first sync", "apply")
		// 100 peer pods in 0.9 s: nothing before the interval is over.
		for range 100 {
			cl.peerChanged()
			time.Sleep(9 * time.Millisecond)
		}
		expect("peer burst within the interval")
		time.Sleep(100 * time.Millisecond) // t = 1 s
		expect("the interval over: one sync for the burst", "apply")
		// A peer change long after the last sync syncs at once.
		time.Sleep(5 * time.Second)
		cl.peerChanged()
		expect("a lone peer change", "apply")
		// A policy change right after still syncs at once, and a peer change
		// right after that waits for the interval again.
		cl.set(func(in *policy.Input) { in.Policies = in.Policies[:1] })
		expect("policy change", "apply")
		cl.peerChanged()
		expect("peer change right after a sync")
		time.Sleep(time.Second)
		expect("the interval over", "apply")
		cancel()
		synctest.Wait()
	})
}

// A pod added while a sync translates without the lock is not lost: the
// sync sees the add and translates again, under the lock, with the pod.
func TestSyncAfterConcurrentAdd(t *testing.T) {
	ctx := context.Background()
	cl := testCluster()
	cl.synced.Store(true)
	lo := &fakeLocals{}
	lo.add(record("x", "a", "u-a", "flock0000000a", "2001:db8:1::a"))
	r := &fakeRules{addOK: true}
	c := New(node, cl, lo, r, discard)
	lo.onList = func() {
		// After the sync's first List: the agent saves x/c and calls PodAdded.
		lo.add(record("x", "c", "u-c", "flock0000000c", "2001:db8:1::c"))
		cl.mu.Lock()
		cl.in.Pods = append(cl.in.Pods, policy.Pod{Namespace: "x", Name: "c", UID: "u-c", Node: node})
		cl.mu.Unlock()
		if err := c.PodAdded(ctx, &model.Pod{Namespace: "x", Name: "c", UID: "u-c"}, "flock0000000c", []netip.Addr{netip.MustParseAddr("2001:db8:1::c")}); err != nil {
			t.Error(err)
		}
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	wantAddThenFullApply(t, r)
}

// wantAddThenFullApply checks that the rules were asked for a pod's add and
// then for a full apply, whose model has both local pods, x/a and the added
// x/c.
func wantAddThenFullApply(t *testing.T, r *fakeRules) {
	t.Helper()
	calls, models := r.take()
	if d := cmp.Diff([]string{"add", "apply"}, calls); d != "" {
		t.Fatalf("calls (-want +got):\n%s", d)
	}
	var ifaces []string
	for _, p := range models[1].Pods {
		ifaces = append(ifaces, p.Iface)
	}
	if d := cmp.Diff([]string{"flock0000000a", "flock0000000c"}, ifaces); d != "" {
		t.Errorf("pods of the full apply (-want +got):\n%s", d)
	}
}

// Applied reports the ruleset of the last full apply, extended by the
// fast path's pods, and the last error until an apply succeeds again.
func TestApplied(t *testing.T) {
	ctx := context.Background()
	cl := testCluster()
	cl.in.Pods = append(cl.in.Pods, policy.Pod{Namespace: "x", Name: "c", UID: "u-c", Node: node, Labels: map[string]string{"role": "server"}})
	lo := &fakeLocals{}
	lo.add(record("x", "a", "u-a", "flock0000000a", "2001:db8:1::a"))
	r := &fakeRules{addOK: true}
	c := New(node, cl, lo, r, discard)
	ifaces := func() []string {
		a, _ := c.Applied()
		if a.Model == nil {
			return nil
		}
		var out []string
		for _, p := range a.Model.Pods {
			out = append(out, p.Iface)
		}
		slices.Sort(out)
		return out
	}
	if a, synced := c.Applied(); a.Model != nil || synced || !a.LastApply.IsZero() {
		t.Errorf("before anything: %+v, synced %v", a, synced)
	}
	cl.synced.Store(true)
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	a, synced := c.Applied()
	if !synced || a.LastApply.IsZero() || a.LastChange.IsZero() || a.LastError != nil {
		t.Errorf("after a sync: %+v, synced %v", a, synced)
	}
	if d := cmp.Diff([]string{"flock0000000a"}, ifaces()); d != "" {
		t.Errorf("pods after a sync (-want +got):\n%s", d)
	}

	ip := netip.MustParseAddr("2001:db8:1::c")
	lo.add(record("x", "c", "u-c", "flock0000000c", ip.String()))
	if err := c.PodAdded(ctx, &model.Pod{Namespace: "x", Name: "c", UID: "u-c"}, "flock0000000c", []netip.Addr{ip}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"flock0000000a", "flock0000000c"}, ifaces()); d != "" {
		t.Errorf("pods after the fast path (-want +got):\n%s", d)
	}

	r.failApply(errors.New("nft: exit status 1"))
	if err := c.Sync(ctx); err == nil {
		t.Fatal("Sync succeeded with a failing nft")
	}
	if a, _ := c.Applied(); a.LastError == nil || a.LastErrorTime.IsZero() || len(ifaces()) != 2 {
		t.Errorf("after a failed apply: %+v, pods %v; want the error and the last ruleset", a, ifaces())
	}
	r.failApply(nil)
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := c.Applied(); a.LastError != nil {
		t.Errorf("error %v kept after a successful apply", a.LastError)
	}
}
