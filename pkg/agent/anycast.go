package agent

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/fritzlab/flock/pkg/anycast"
)

// Readiness tells whether a pod is Ready (from the pod informer).
type Readiness interface {
	PodReady(namespace, name string) bool
}

// AnycastKernel installs the node's anycast routes ("set everything").
type AnycastKernel interface {
	SyncAnycast(desired map[netip.Addr][]anycast.NextHop) error
}

// AnycastAnnouncer is told the active anycast set (BIRD announces it).
type AnycastAnnouncer interface {
	SetAnycast(addrs []netip.Addr)
}

// AnycastReconciler keeps each anycast address routed, and announced,
// exactly while at least one Ready pod on this node serves it. It is level
// triggered: every run computes the desired routes from the allocations on
// disk and the pods' readiness, and applies them when they differ from
// what was last applied.
type AnycastReconciler struct {
	a        *Agent
	ready    Readiness
	kernel   AnycastKernel
	announce AnycastAnnouncer // nil when BGP is off
	poke     chan struct{}

	last     map[netip.Addr][]anycast.NextHop
	applied  bool
	warnings string
	waited   bool // the "not synced" line was logged
	// announcedOnce: the announcer has been given a set.
	announcedOnce bool
	// event is when the first poke or readiness change since the last
	// reconcile came (zero: none), for the announce latency.
	event time.Time

	// mu guards what State reads: Reconcile runs in one goroutine and
	// writes these only where it changes them.
	mu        sync.Mutex
	routed    map[netip.Addr][]anycast.NextHop
	announced []netip.Addr
}

// NewAnycastReconciler builds the reconciler; the agent pokes it after
// every ADD and DEL.
func (a *Agent) NewAnycastReconciler(ready Readiness, kernel AnycastKernel, announce AnycastAnnouncer) *AnycastReconciler {
	r := &AnycastReconciler{a: a, ready: ready, kernel: kernel, announce: announce, poke: make(chan struct{}, 1)}
	a.anycastPoke = r.Poke
	return r
}

// Poke asks for a reconcile soon; it never blocks.
func (r *AnycastReconciler) Poke() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Run reconciles on every poke, every change of readiness and every tick
// (a safety net) until ctx ends. Until the agent's source has synced it
// does nothing (see Reconcile); the tick runs it once it has.
func (r *AnycastReconciler) Run(ctx context.Context, every time.Duration, readyChanges <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	r.Reconcile(true)
	for {
		resync := false
		select {
		case <-ctx.Done():
			return
		case <-r.poke:
			r.event = time.Now()
		case <-readyChanges:
			r.event = time.Now()
		case <-t.C:
			resync = true
		}
		r.Reconcile(resync)
		r.event = time.Time{}
	}
}

// Reconcile computes the desired anycast routes and applies what changed.
// With resync it re-applies to the kernel even when nothing changed, which
// repairs drift (SyncAnycast writes nothing when the kernel matches).
//
// Until the agent's source has synced it leaves the kernel routes and
// BIRD's announcements as a previous agent left them: before that every
// pod looks not Ready, and a restart while the API server is unreachable
// would withdraw every anycast address of the node.
func (r *AnycastReconciler) Reconcile(resync bool) {
	if !r.a.Synced() {
		if !r.waited {
			r.waited = true
			r.a.log.Info("anycast routes and announcements kept as they are until the pod informer has synced")
		}
		return
	}
	var allocs []anycast.Allocation
	ready := map[string]bool{}
	for _, rec := range r.a.store.List() {
		if len(rec.Anycast) == 0 {
			continue
		}
		key := rec.Namespace + "/" + rec.Name
		allocs = append(allocs, anycast.Allocation{Pod: key, HostIface: rec.HostIface, IPv6: rec.IPv6, IPv4: rec.IPv4, Anycast: rec.Anycast})
		ready[key] = r.ready.PodReady(rec.Namespace, rec.Name)
	}
	desired, warnings := anycast.Resolve(allocs, ready)
	if s := warningText(warnings); s != r.warnings {
		r.warnings = s
		for _, w := range warnings {
			r.a.log.Warn("anycast address skipped", "pod", w.Pod, "address", w.Addr, "reason", w.Reason)
		}
	}
	if r.applied && !resync && anycast.Equal(desired, r.last) {
		r.a.pass(r.a.anycastLoop, nil)
		return
	}
	active, previous := anycast.Active(desired), anycast.Active(r.last)
	// Withdraw from BGP before the route goes, so the router stops sending
	// before the node stops forwarding; announce only once the route exists.
	shrinking := r.applied && len(active) < len(previous) && subset(active, previous)
	if shrinking && r.announce != nil {
		r.setAnnounced(active)
	}
	if err := r.kernel.SyncAnycast(desired); err != nil {
		r.a.log.Error("sync anycast routes", "err", err)
		if r.announce != nil && !r.announcedOnce {
			// SyncAnycast applies all it can. The BGP controller renders
			// nothing until it has heard a set once (it waits for it after a
			// restart), so a route that keeps failing (a pod's veth gone
			// before its DEL) must not hold up BIRD's whole config.
			r.setAnnounced(active)
		}
		r.applied = false
		r.a.pass(r.a.anycastLoop, err)
		return
	}
	r.a.pass(r.a.anycastLoop, nil)
	r.mu.Lock()
	r.routed = desired
	r.mu.Unlock()
	if !shrinking && r.announce != nil {
		r.setAnnounced(active)
		if !subset(active, previous) && !r.event.IsZero() && r.a.obs != nil {
			r.a.obs.AnycastAnnounced(time.Since(r.event))
		}
	}
	if !anycast.Equal(desired, r.last) {
		r.a.log.Info("anycast routes applied", "active", active)
	}
	r.last, r.applied = desired, true
}

func (r *AnycastReconciler) setAnnounced(active []netip.Addr) {
	r.announce.SetAnycast(active)
	r.announcedOnce = true
	r.mu.Lock()
	r.announced = active
	r.mu.Unlock()
}

// AnycastState is what the reconciler last did: the routes it installed
// (when SyncAnycast failed, those of the last success) and the addresses
// it last handed to BIRD.
type AnycastState struct {
	Routes    map[netip.Addr][]anycast.NextHop
	Announced []netip.Addr
	// BGP says whether there is an announcer (BGP on).
	BGP bool
}

// State returns a copy of what the reconciler last did, for reading while
// it runs (the admin API).
func (r *AnycastReconciler) State() AnycastState {
	r.mu.Lock()
	defer r.mu.Unlock()
	routes := make(map[netip.Addr][]anycast.NextHop, len(r.routed))
	for a, hops := range r.routed {
		routes[a] = slices.Clone(hops)
	}
	return AnycastState{Routes: routes, Announced: slices.Clone(r.announced), BGP: r.announce != nil}
}

func subset(a, b []netip.Addr) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func warningText(ws []anycast.Warning) string {
	s := ""
	for _, w := range ws {
		s += w.Pod + " " + w.Addr.String() + " " + w.Reason + "\n"
	}
	return s
}
