package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/fritzlab/flock/pkg/annotations"
	"github.com/fritzlab/flock/pkg/model"
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

// AnycastScope tells the agent, for a pod that asks for anycast addresses,
// the ranges no pod may claim beyond its node's pools (every NodeConfig's
// pools, the Service ranges, the addresses of this node and of every Node)
// and what the pod's namespace allows (set false: the namespace says
// nothing).
type AnycastScope interface {
	Reserved(ctx context.Context) ([]annotations.Reserved, error)
	NamespaceCIDRs(ctx context.Context, namespace string) (cidrs []netip.Prefix, set bool, err error)
}

// SetAnycastScope installs the scope; nil (the default) reserves nothing
// beyond the node's pools and the NodeConfig's allowlist.
func (a *Agent) SetAnycastScope(s AnycastScope) { a.scope = s }

// anycastLimits are the limits for pod's anycast addresses. A scope that
// cannot answer fails closed: the pod gets no anycast address (the warning
// says why), never an unchecked one.
func (a *Agent) anycastLimits(ctx context.Context, pod *model.Pod, node *model.Node) (annotations.AnycastLimits, error) {
	lim := annotations.AnycastLimits{Allowed: node.AnycastAllowed, Pools: []netip.Prefix{node.Pool6, node.Pool4}}
	if _, asks := pod.Annotations[annotations.KeyAnycast]; !asks || a.scope == nil || len(lim.Allowed) == 0 {
		return lim, nil
	}
	var err error
	if lim.Reserved, err = a.scope.Reserved(ctx); err != nil {
		return annotations.AnycastLimits{Pools: lim.Pools}, fmt.Errorf("the ranges no pod may claim are unknown (%w), so the pod gets no anycast address", err)
	}
	if lim.Namespace, lim.NamespaceSet, err = a.scope.NamespaceCIDRs(ctx, pod.Namespace); err != nil {
		return annotations.AnycastLimits{Pools: lim.Pools}, fmt.Errorf("namespace %s: %w; the pod gets no anycast address", pod.Namespace, err)
	}
	return lim, nil
}
