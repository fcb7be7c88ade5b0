package lbannounce

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fritzlab/flock/pkg/annotations"
)

// Source serves the records Decide reads (kube.Services is one).
type Source interface {
	// HasSynced: every informer has listed once. Before that a missing
	// Service or endpoint means "not seen yet", not "gone".
	HasSynced() bool
	// Snapshot returns the Services, their Ready endpoints and the valid
	// pools (oldest first) as the caches hold them now.
	Snapshot() ([]Service, map[string]Endpoints, []Pool)
}

// Announcer is told the whole set of Service routes to announce
// (routing.Controller.SetServices), and when the first event that caused
// the change came (a Service or EndpointSlice change; zero for none: the
// first set, a tick), so that it can time the change to BIRD.
type Announcer interface {
	SetServices(routes []Route, cause time.Time)
}

// Options are what a Reconciler works with.
type Options struct {
	Source    Source
	Announcer Announcer
	// Reserved returns the ranges no Service address may be in (every
	// node's pod pools, the Service ranges); nil: none.
	Reserved func() []annotations.Reserved
	// NodeReady tells whether the node's agent is ready; nil: always.
	NodeReady func() bool
	// SyncWait, when set, bounds the wait for the Source once the agent's
	// other caches have synced (OthersSynced): a Source still not synced
	// that long after them (the agent may not list Services: an old RBAC)
	// gets an empty set handed over once, with an error logged, so that
	// the BGP controller, which waits for a first set, still announces
	// the pools and anycast addresses. While the others have not synced
	// either (the API server is unreachable), nothing is handed over, so
	// BIRD keeps announcing what it does.
	SyncWait time.Duration
	// OthersSynced tells whether the agent's other caches have synced;
	// nil: from the start.
	OthersSynced func() bool
	Log          *slog.Logger
}

// Reconciler keeps the Announcer's set equal to Decide's, level triggered:
// each pass decides from the caches from scratch and hands the routes over
// when they differ from the last set handed over. It hands nothing over
// before the Source has synced: a restarted agent keeps what BIRD
// announces until it knows the Services (routing.Options.AwaitServices).
type Reconciler struct {
	o    Options
	poke chan struct{}

	// Used by the Run goroutine only.
	last    []Route
	handed  bool
	refused string // the refusals last logged
	waited  bool
	event   time.Time
	// othersAt is when OthersSynced was first seen true.
	othersAt time.Time

	mu        sync.Mutex
	decisions []Decision
	announced []Route
}

// NewReconciler builds a reconciler; nothing runs until Run.
func NewReconciler(o Options) *Reconciler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Reconciler{o: o, poke: make(chan struct{}, 1)}
}

// Poke asks for a pass soon; it never blocks.
func (r *Reconciler) Poke() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Run passes at once, on every poke and on every change of changes (the
// informers' events), and every tick, until ctx ends.
func (r *Reconciler) Run(ctx context.Context, every time.Duration, changes <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r.Reconcile()
		r.event = time.Time{}
		select {
		case <-ctx.Done():
			return
		case <-r.poke:
			r.event = time.Now()
		case <-changes:
			r.event = time.Now()
		case <-t.C:
		}
	}
}

// Reconcile decides once and hands the routes to the Announcer when they
// changed.
func (r *Reconciler) Reconcile() {
	if !r.o.Source.HasSynced() {
		if !r.waited {
			r.waited = true
			r.o.Log.Info("service announcements kept as they are until the service, endpointslice and serviceaddresspool caches have synced")
		}
		if r.othersAt.IsZero() && (r.o.OthersSynced == nil || r.o.OthersSynced()) {
			r.othersAt = time.Now()
		}
		if !r.handed && r.o.SyncWait > 0 && !r.othersAt.IsZero() && time.Since(r.othersAt) >= r.o.SyncWait {
			r.o.Log.Error("service, endpointslice and serviceaddresspool caches not synced; announcing no service address until they are",
				"waited", r.o.SyncWait)
			r.o.Announcer.SetServices(nil, time.Time{})
			r.handed = true
		}
		return
	}
	in := Input{NodeReady: r.o.NodeReady == nil || r.o.NodeReady()}
	in.Services, in.Endpoints, in.Pools = r.o.Source.Snapshot()
	if r.o.Reserved != nil {
		in.Reserved = r.o.Reserved()
	}
	ds, routes := Decide(in)
	r.mu.Lock()
	r.decisions = ds
	r.mu.Unlock()
	r.logRefused(ds)
	if r.handed && slices.EqualFunc(routes, r.last, Route.Equal) {
		return
	}
	cause := r.event
	if !r.handed {
		cause = time.Time{} // the first set is no change
	}
	r.o.Announcer.SetServices(routes, cause)
	r.mu.Lock()
	r.announced = routes
	r.mu.Unlock()
	// The lab's tests and the operator follow announcements by this line.
	v6, v4 := Addrs(routes)
	r.o.Log.Info("service addresses announced", "addresses", routeAddrs(routes), "ipv6", v6, "ipv4", v4)
	r.last, r.handed = routes, true
}

// logRefused logs the refused addresses when the set of them changed, so a
// pass every few seconds does not repeat them.
func (r *Reconciler) logRefused(ds []Decision) {
	s := ""
	for _, d := range ds {
		if d.Refused {
			s += d.Service + " " + d.Addr.String() + " " + d.Reason + "\n"
		}
	}
	if s == r.refused {
		return
	}
	r.refused = s
	for _, d := range ds {
		if d.Refused {
			r.o.Log.Warn("service address not announced", "service", d.Service, "address", d.Addr, "reason", d.Reason)
		}
	}
}

// Decisions returns the verdicts of the last pass (nil before the first),
// for the admin API.
func (r *Reconciler) Decisions() []Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.decisions)
}

// Announced returns the routes last handed to the Announcer.
func (r *Reconciler) Announced() []Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.announced)
}

func routeAddrs(routes []Route) []string {
	out := make([]string, len(routes))
	for i, r := range routes {
		out[i] = r.Addr.String()
	}
	return out
}

// Synced tells whether the Source has synced (the admin API shows it).
func (r *Reconciler) Synced() bool { return r.o.Source.HasSynced() }
