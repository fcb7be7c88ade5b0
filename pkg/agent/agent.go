// Package agent is the node agent's core: it answers the CNI plugin's calls
// by combining the node's configuration, the pod's annotations, IPAM, the
// on-disk store and the kernel data path. Everything it talks to sits behind
// a small interface defined here, so the decisions are tested with fakes and
// the kernel parts on their own.
package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/ipam"
	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/store"
)

// Source tells the agent its node's configuration and its pods' metadata.
// A file-backed implementation serves tests and the first demo; the
// Kubernetes one reads informer caches.
type Source interface {
	// Node returns the node's configuration, or an error wrapping
	// model.ErrNoNodeConfig while there is none.
	Node(ctx context.Context) (*model.Node, error)
	// Pod returns a pod's metadata, or an error wrapping model.ErrPodNotFound.
	Pod(ctx context.Context, namespace, name string) (*model.Pod, error)
}

// Synced is what a Source also implements when it fills from caches that
// must list first (the Kubernetes informers): until HasSynced, a pod it
// does not know may well exist. A Source without it is always synced.
type Synced interface {
	HasSynced() bool
}

// Recorder reports problems with a pod's annotations where the pod's owner
// sees them (a log line, and on Kubernetes an Event on the pod).
type Recorder interface {
	PodWarning(pod *model.Pod, reason, message string)
}

// Datapath is the kernel side: one pod's veth, addresses and routes, and
// the node's pool routes.
type Datapath interface {
	Setup(a datapath.Attachment) (datapath.Result, error)
	Teardown(a datapath.Attachment) error
	Check(a datapath.Attachment) error
	SyncPools(p datapath.Pools) error
	HostIfaces() ([]string, error)
	SetPodAnycast(netns string, addrs []netip.Addr) error
}

// Agent serves CNI calls for one node.
type Agent struct {
	src    Source
	rec    Recorder
	dp     Datapath
	store  *store.Store
	log    *slog.Logger
	policy Policy
	// guard is the anti-spoofing guard (nil without one); guardMu
	// serialises building its set with applying it.
	guard   SourceGuard
	guardMu sync.Mutex
	// scope bounds anycast claims beyond the node's own config (nil: none).
	scope AnycastScope
	// exhausted counts ADDs refused because a pool (or the pod's range of
	// it) had no free address.
	exhausted atomic.Uint64
	// anycastPoke asks the anycast reconciler to run (nil without one).
	anycastPoke func()
	// obs counts events for metrics, ready is the agent's readiness and
	// poolsLoop the pool loop's heartbeat; see Instrument.
	obs                    Observer
	ready                  func(context.Context) error
	poolsLoop, anycastLoop Loop

	// mu guards the node's configuration and the allocator built from it;
	// the allocator has its own lock for allocations.
	mu    sync.RWMutex
	node  *model.Node
	alloc *ipam.Allocator

	// held are addresses the kernel shows in use on flock veths that no
	// allocation records (see Restore): every allocator is seeded with
	// them, so they are never handed out while a veth carries them.
	held map[netip.Addr]string

	// drainMu guards the draining pools last applied (syncDrains).
	drainMu     sync.Mutex
	drains      []Drain
	drainsKnown bool
	drainHook   DrainHook

	// leaks counts the allocations the leak sweep released.
	leaks atomic.Uint64

	// locks serialise calls for one attachment (striped by key hash), so
	// ADD, DEL and CHECK of one container never interleave while calls for
	// different pods run in parallel.
	locks [64]sync.Mutex
}

// Observer is told of events worth counting (metrics.Metrics is one).
type Observer interface {
	// IPAMRetry: an IPv6 candidate was in use.
	IPAMRetry()
	// IPAMConflict: an allocation on disk held an address another one had.
	IPAMConflict()
	// AnycastAnnounced: an address became active this long after the event
	// that made it so.
	AnycastAnnounced(d time.Duration)
}

// Loop is a control loop's heartbeat (health.Loop): every pass reports
// its outcome.
type Loop interface{ Pass(err error) }

// Instrumentation is what Instrument installs; nil fields stay off.
type Instrumentation struct {
	Observer Observer
	// Ready replaces the agent's own readiness (a NodeConfig applied) as
	// the answer to CNI STATUS, so that STATUS, /readyz and the Node's
	// condition agree; it should include Agent.Ready.
	Ready func(context.Context) error
	// Pools and Anycast are the heartbeats of the pool loop (Run) and of
	// the anycast reconciler.
	Pools, Anycast Loop
}

// Instrument installs metrics, readiness and heartbeats; call it before
// Run, Sync and NewAnycastReconciler.
func (a *Agent) Instrument(in Instrumentation) {
	a.obs, a.ready, a.poolsLoop, a.anycastLoop = in.Observer, in.Ready, in.Pools, in.Anycast
}

// New builds an agent. It does not touch the kernel until Sync.
func New(src Source, rec Recorder, dp Datapath, st *store.Store, log *slog.Logger) *Agent {
	return &Agent{src: src, rec: rec, dp: dp, store: st, log: log}
}

func (a *Agent) lock(k store.Key) func() {
	h := fnv.New32a()
	h.Write([]byte(k.ContainerID))
	h.Write([]byte{0})
	h.Write([]byte(k.IfName))
	m := &a.locks[h.Sum32()%uint32(len(a.locks))]
	m.Lock()
	return m.Unlock
}

// Sync reads the node's configuration and, when it changed, rebuilds the
// allocator (seeded from every allocation on disk, so a restarted agent
// never hands out a live address) and the node's pool routes. It is called
// at start, before every ADD and on a timer.
func (a *Agent) Sync(ctx context.Context) (*model.Node, *ipam.Allocator, error) {
	node, err := a.src.Node(ctx)
	if err != nil {
		return nil, nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.node != nil && a.node.Pool6 == node.Pool6 && a.node.Pool4 == node.Pool4 {
		a.node = node // defaults and annotations may change without a new allocator
		return node, a.alloc, nil
	}
	alloc := ipam.New(node.Pool6, node.Pool4, nil)
	if a.obs != nil {
		alloc.OnRetry(a.obs.IPAMRetry)
	}
	recs := a.store.List()
	for _, r := range recs {
		if err := alloc.Reserve(r.ContainerID+"/"+r.IfName, addrs(r)...); err != nil {
			a.log.Warn("allocation on disk conflicts", "container", r.ContainerID, "ifname", r.IfName, "err", err)
			if a.obs != nil {
				a.obs.IPAMConflict()
			}
		}
	}
	for addr, owner := range a.held {
		if err := alloc.Reserve(owner, addr); err != nil {
			a.log.Warn("address in use in the kernel conflicts", "address", addr, "err", err)
		}
	}
	drains := Drains(node.Pool6, node.Pool4, recs)
	if err := a.dp.SyncPools(poolsFor(node, drains)); err != nil {
		return nil, nil, fmt.Errorf("install pool routes for node %s: %w", node.Name, err)
	}
	a.log.Info("node configuration applied", "node", node.Name, "pool6", node.Pool6, "pool4", node.Pool4, "allocations", len(recs))
	a.node, a.alloc = node, alloc
	a.drainMu.Lock()
	a.logDrains(node, drains)
	a.drains, a.drainsKnown = drains, true
	if a.drainHook != nil {
		a.drainHook(node, drains)
	}
	a.drainMu.Unlock()
	return node, alloc, nil
}

// Synced reports whether the source's caches have listed once. Until they
// have, the agent prunes nothing it owns and changes no announcement: after
// a restart with the API server unreachable, every pod looks gone.
func (a *Agent) Synced() bool {
	s, ok := a.src.(Synced)
	return !ok || s.HasSynced()
}

// Ready reports whether the agent can serve ADD: its NodeConfig applied.
func (a *Agent) Ready(ctx context.Context) error {
	_, _, err := a.Sync(ctx)
	return err
}

// status is the answer to CNI STATUS: the readiness Instrument installed,
// else Ready.
func (a *Agent) status(ctx context.Context) error {
	if a.ready != nil {
		return a.ready(ctx)
	}
	return a.Ready(ctx)
}

// Run keeps the node's configuration and pool routes in sync until ctx ends.
// Failures are logged and retried at the next tick; pool routes are
// re-applied on every tick (self-heal), which is a no-op when nothing drifted.
func (a *Agent) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.resyncGuard(ctx)
		node, _, err := a.Sync(ctx)
		if err != nil {
			if !errors.Is(err, model.ErrNoNodeConfig) {
				a.log.Error("sync node configuration", "err", err)
			}
			a.pass(a.poolsLoop, err)
			continue
		}
		err = a.dp.SyncPools(poolsFor(node, Drains(node.Pool6, node.Pool4, a.store.List())))
		if err != nil {
			a.log.Error("self-heal pool routes", "node", node.Name, "err", err)
		}
		a.syncDrains()
		a.pass(a.poolsLoop, err)
	}
}

func (a *Agent) pass(l Loop, err error) {
	if l != nil {
		l.Pass(err)
	}
}

// Node returns the configuration the agent applied last, nil before the
// first successful Sync. It is for reading (the admin API); do not modify it.
func (a *Agent) Node() *model.Node {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.node
}

// Exhausted counts the ADDs refused because the pool, or the pod's range of
// it, had no free address (a metric of exhausted pools).
func (a *Agent) Exhausted() uint64 { return a.exhausted.Load() }
