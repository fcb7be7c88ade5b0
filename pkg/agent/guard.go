package agent

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	"github.com/fritzlab/flock/pkg/store"
)

// PodSources is one pod's host veth and the addresses it may send from.
type PodSources struct {
	Iface string
	Addrs []netip.Addr
}

// SourceGuard drops packets a pod sends from an address it was not given
// (anti-spoofing). The agent gives it the whole set, every time.
type SourceGuard interface {
	// Allow makes exactly these pods' sources the allowed ones; an error
	// fails the ADD that asked.
	Allow(ctx context.Context, pods []PodSources) error
	// Resync repairs drift in the kernel (the periodic self-heal).
	Resync(ctx context.Context) error
}

// SetGuard installs the anti-spoofing guard; nil (the default) has none.
func (a *Agent) SetGuard(g SourceGuard) { a.guard = g }

// guardSources are every allocation's sources: its eth0 unicast addresses
// and its granted anycast addresses.
func guardSources(recs []store.Record) []PodSources {
	out := make([]PodSources, 0, len(recs))
	for _, r := range recs {
		src := append(addrs(r), r.Anycast...)
		out = append(out, PodSources{Iface: r.HostIface, Addrs: src})
	}
	slices.SortFunc(out, func(x, y PodSources) int { return strings.Compare(x.Iface, y.Iface) })
	// Two attachments of one container share a veth name only if the
	// store is inconsistent; merge them rather than fail every ADD.
	merged := out[:0]
	for _, p := range out {
		if n := len(merged); n > 0 && merged[n-1].Iface == p.Iface {
			merged[n-1].Addrs = append(merged[n-1].Addrs, p.Addrs...)
			continue
		}
		merged = append(merged, p)
	}
	return merged
}

// SyncGuard gives the guard the sources of every allocation on disk. The
// agent calls it at start, on every ADD (before the pod's veth exists, so
// the pod never sends unguarded, and its own traffic passes from the
// first packet) and DEL, and the lock keeps an older set from overwriting
// a newer one when calls race.
func (a *Agent) SyncGuard(ctx context.Context) error {
	if a.guard == nil {
		return nil
	}
	a.guardMu.Lock()
	defer a.guardMu.Unlock()
	return a.guard.Allow(ctx, guardSources(a.store.List()))
}

// resyncGuard is the periodic self-heal.
func (a *Agent) resyncGuard(ctx context.Context) {
	if a.guard == nil {
		return
	}
	if err := a.SyncGuard(ctx); err != nil {
		a.log.Error("anti-spoofing: apply", "err", err)
		return
	}
	if err := a.guard.Resync(ctx); err != nil {
		a.log.Error("anti-spoofing: self-heal", "err", err)
	}
}

// forgetGuard takes a deleted allocation's sources out (best effort: the
// veth is gone already, so a stale entry allows nothing; the next call or
// tick catches up).
func (a *Agent) forgetGuard() {
	if err := a.SyncGuard(context.Background()); err != nil {
		a.log.Error("anti-spoofing: remove a deleted pod's sources", "err", err)
	}
}
