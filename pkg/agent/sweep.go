package agent

import (
	"context"
	"errors"
	"time"

	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/store"
)

// Leak sweep defaults: how often it runs, and how old an allocation must
// be before it is a candidate (a pod the runtime is still creating can be
// missing from the API's cache, and its netns from the disk, for a moment).
const (
	DefaultSweepEvery = time.Minute
	DefaultSweepGrace = 2 * time.Minute
)

// NetnsChecker tells whether a network namespace path still is one
// (datapath.Kernel is one). Without it the sweep never runs.
type NetnsChecker interface {
	NetnsExists(path string) (bool, error)
}

// PodPresence is what the API says of an allocation's pod.
type PodPresence int

const (
	// PodUnknown: the API could not be asked, or the allocation names no pod.
	PodUnknown PodPresence = iota
	// PodPresent: the pod exists (same UID).
	PodPresent
	// PodGone: no such pod, or one of that name with another UID.
	PodGone
)

// LeakFacts is what the sweep knows of one allocation.
type LeakFacts struct {
	Age time.Duration
	// NetnsGone: the netns path is no namespace any more.
	NetnsGone bool
	Pod       PodPresence
}

// Leaked is the sweep's pure decision: an allocation is a leak, to be
// released as DEL would, only when it is older than grace, its netns is
// gone and the API says its pod is gone. Any doubt keeps it: a runtime
// that never calls GC is the only reason to act without being asked.
func Leaked(f LeakFacts, grace time.Duration) bool {
	return f.Age >= grace && f.NetnsGone && f.Pod == PodGone
}

// LeaksReleased is how many allocations the leak sweep has released since
// the agent started (a counter for metrics).
func (a *Agent) LeaksReleased() uint64 { return a.leaks.Load() }

// RunSweep sweeps every interval until ctx ends; nothing is swept before
// the source has synced.
func (a *Agent) RunSweep(ctx context.Context, every, grace time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.Sweep(ctx, time.Now(), grace)
	}
}

// Sweep releases the allocations that Leaked says are leaks, and forgets
// held kernel addresses whose veth is gone; it returns how many it
// released. It does nothing before the source has synced.
func (a *Agent) Sweep(ctx context.Context, now time.Time, grace time.Duration) int {
	nc, ok := a.dp.(NetnsChecker)
	if !ok || !a.Synced() {
		return 0
	}
	if lister, ok := a.dp.(AttachmentLister); ok {
		if live, err := lister.Attached(); err == nil {
			a.releaseHeld(live)
		}
	}
	n := 0
	for _, r := range a.store.List() {
		f := LeakFacts{Age: now.Sub(r.Created)}
		if f.Age < grace {
			continue
		}
		f.NetnsGone = netnsGone(nc, r.Netns)
		if !f.NetnsGone {
			continue
		}
		f.Pod = a.podPresence(ctx, r)
		if !Leaked(f, grace) {
			continue
		}
		unlock := a.lock(r.Key())
		cur, ok := a.store.Get(r.Key())
		// Re-checked under the attachment's lock: an ADD may have come since.
		if ok && cur.Netns == r.Netns && cur.Created.Equal(r.Created) {
			if err := a.release(r.Key(), ""); err != nil {
				a.log.Error("release leaked allocation", "pod", r.Namespace+"/"+r.Name, "container", r.ContainerID, "err", err)
			} else {
				n++
				a.leaks.Add(1)
				a.log.Warn("leaked allocation released: pod gone from the API and its netns gone, and the runtime never called DEL or GC",
					"pod", r.Namespace+"/"+r.Name, "container", r.ContainerID, "netns", r.Netns, "ipv6", r.IPv6, "ipv4", r.IPv4,
					"age", f.Age.Round(time.Second), "released_total", a.leaks.Load())
			}
		}
		unlock()
	}
	return n
}

func netnsGone(nc NetnsChecker, path string) bool {
	if path == "" {
		return false // nothing to go by
	}
	ok, err := nc.NetnsExists(path)
	return err == nil && !ok
}

func (a *Agent) podPresence(ctx context.Context, r store.Record) PodPresence {
	if r.Namespace == "" || r.Name == "" {
		return PodUnknown
	}
	p, err := a.src.Pod(ctx, r.Namespace, r.Name)
	switch {
	case errors.Is(err, model.ErrPodNotFound):
		return PodGone
	case err != nil:
		return PodUnknown
	case r.UID != "" && p.UID != "" && p.UID != r.UID:
		return PodGone
	}
	return PodPresent
}
