package agent

import (
	"net/netip"
	"slices"

	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/store"
)

// Drain is a former pool of the node that still holds pods: the NodeConfig
// moved spec.cidr6 or spec.cidr4 while pods had addresses in the old pool.
// The node keeps blackholing and announcing it (and keeps its IPv4
// gateway on lo) until the last of those pods is deleted, so that they
// keep their traffic; new pods get addresses from the new pool only.
type Drain struct {
	// Prefix is the old pool: the one recorded with the allocation, or,
	// for an allocation that has no pool recorded (written by an older
	// agent), the pod's address alone (/128 or /32).
	Prefix netip.Prefix
	// Gateway4 is the IPv4 gateway its pods route via (IPv4 only).
	Gateway4 netip.Addr
	// Allocations is how many attachments still hold an address in it.
	Allocations int
}

// Drains is the pure decision: which former pools still hold allocations,
// given the node's current pools. An address inside the current pool of
// its family is not draining, whatever pool its record names. Sorted by
// prefix.
func Drains(pool6, pool4 netip.Prefix, recs []store.Record) []Drain {
	by := map[netip.Prefix]*Drain{}
	add := func(addr netip.Addr, recorded, current netip.Prefix, gw netip.Addr) {
		if !addr.IsValid() || (current.IsValid() && current.Contains(addr)) {
			return
		}
		p := recorded
		if !p.IsValid() || !p.Contains(addr) {
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		d := by[p]
		if d == nil {
			d = &Drain{Prefix: p}
			by[p] = d
		}
		if addr.Is4() && gw.IsValid() && p.Contains(gw) {
			d.Gateway4 = gw
		}
		d.Allocations++
	}
	for _, r := range recs {
		add(r.IPv6, r.Pool6, pool6, netip.Addr{})
		add(r.IPv4, r.Pool4, pool4, r.Gateway4)
	}
	out := make([]Drain, 0, len(by))
	for _, d := range by {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b Drain) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	return out
}

// poolsFor is the pool state the node's kernel keeps for node: its pools
// and the draining ones.
func poolsFor(node *model.Node, drains []Drain) datapath.Pools {
	p := datapath.Pools{Pool6: node.Pool6, Pool4: node.Pool4}
	for _, d := range drains {
		p.Draining = append(p.Draining, d.Prefix)
		if d.Gateway4.IsValid() {
			p.DrainGateways4 = append(p.DrainGateways4, d.Gateway4)
		}
	}
	return p
}

// Draining returns the prefixes of n's former pools that still hold pods
// (see Drains): BIRD announces them with the pools.
func (a *Agent) Draining(n *model.Node) []netip.Prefix {
	var out []netip.Prefix
	for _, d := range Drains(n.Pool6, n.Pool4, a.store.List()) {
		out = append(out, d.Prefix)
	}
	return out
}

// DrainHook is told the node's draining pools each time they change
// (counts included), and once after the first pool sync.
type DrainHook func(node *model.Node, drains []Drain)

// SetDrainHook sets the hook; call it before Sync runs.
func (a *Agent) SetDrainHook(h DrainHook) { a.drainHook = h }

// syncDrains re-applies the pool routes when the draining pools changed
// since the last call (a pod of an old pool was deleted), and tells the
// hook. The caller holds no lock.
func (a *Agent) syncDrains() {
	a.mu.RLock()
	node := a.node
	a.mu.RUnlock()
	if node == nil {
		return
	}
	drains := Drains(node.Pool6, node.Pool4, a.store.List())
	a.drainMu.Lock()
	defer a.drainMu.Unlock()
	if a.drainsKnown && slices.Equal(drains, a.drains) {
		return
	}
	if err := a.dp.SyncPools(poolsFor(node, drains)); err != nil {
		a.log.Error("sync pool routes", "node", node.Name, "err", err)
		return
	}
	a.logDrains(node, drains)
	a.drains, a.drainsKnown = drains, true
	if a.drainHook != nil {
		a.drainHook(node, drains)
	}
}

// logDrains logs a pool that starts or ends draining. The caller holds
// drainMu.
func (a *Agent) logDrains(node *model.Node, drains []Drain) {
	was := map[netip.Prefix]bool{}
	for _, d := range a.drains {
		was[d.Prefix] = true
	}
	now := map[netip.Prefix]bool{}
	for _, d := range drains {
		now[d.Prefix] = true
		if !was[d.Prefix] {
			a.log.Warn("pool draining: pods still hold addresses in a former pool; it stays routed and announced until they are gone",
				"node", node.Name, "pool", d.Prefix, "allocations", d.Allocations)
		}
	}
	for _, d := range a.drains {
		if !now[d.Prefix] {
			a.log.Info("pool drained: no pod holds an address in it any more; no longer routed or announced", "node", node.Name, "pool", d.Prefix)
		}
	}
}
