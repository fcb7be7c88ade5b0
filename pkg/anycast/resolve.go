// Package anycast decides which anycast routes a node keeps: from the pods'
// committed allocations and their readiness, the desired set of anycast
// addresses, each with the next hops that reach its Ready pods on this node.
// It is pure; datapath applies the set to the kernel (SyncAnycast) and the
// BIRD renderer announces its addresses (Active).
//
// A next hop is a pod's own eth0 address of the anycast address's family,
// via the pod's host veth, not the bare veth: the node then resolves the
// next hop with ordinary NDP or ARP for an address the pod has on eth0,
// while the anycast address itself sits on the pod's lo, where the pod
// would not answer NDP for it. Several Ready pods serving one address give
// one route with several next hops (RTA_MULTIPATH), sorted, so the same
// pods always give the same route and a quiet reconcile never rewrites it.
package anycast

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// Allocation is what the resolver needs of one committed pod attachment.
type Allocation struct {
	// Pod is the key Ready is looked up by (namespace/name).
	Pod string
	// HostIface is the host end of the pod's veth.
	HostIface string
	// IPv6 and IPv4 are the pod's eth0 addresses; the zero Addr means the
	// pod has no address of that family.
	IPv6, IPv4 netip.Addr
	// Anycast are the anycast addresses the pod serves, as accepted at
	// ADD (annotations.Anycast).
	Anycast []netip.Addr
}

// NextHop is one way to an anycast address: a pod's eth0 address of the
// same family, through the pod's host veth.
type NextHop struct {
	Via netip.Addr
	Dev string
}

func (h NextHop) String() string { return "via " + h.Via.String() + " dev " + h.Dev }

// Compare orders next hops by Via, then Dev: the order of a route's next
// hops in the desired set.
func (h NextHop) Compare(o NextHop) int {
	if c := h.Via.Compare(o.Via); c != 0 {
		return c
	}
	return cmp.Compare(h.Dev, o.Dev)
}

// Warning is an anycast address of a Ready pod that the resolver skipped,
// or a Ready pod's allocation that it skipped whole.
type Warning struct {
	Pod string
	// Addr is the skipped address; the zero Addr when the whole allocation
	// is skipped.
	Addr netip.Addr
	// Reason continues the sentence "anycast address <Addr> …", or
	// "pod <Pod> …" for a whole allocation.
	Reason string
}

func (w Warning) String() string {
	if !w.Addr.IsValid() {
		return fmt.Sprintf("pod %s %s; not routing its anycast addresses", w.Pod, w.Reason)
	}
	return fmt.Sprintf("pod %s: anycast address %s %s; not routing it to this pod", w.Pod, w.Addr, w.Reason)
}

// Resolve computes the desired anycast routes of a node: every anycast
// address of every Ready pod, mapped to the sorted next hops of the Ready
// pods serving it. ready maps Allocation.Pod to the pod's Ready condition;
// a pod missing from it (pending, or not yet seen by the informer) counts
// as not Ready, like a NotReady one, and contributes nothing. An address
// with no Ready pod is absent. The result does not depend on the order of
// allocs, nor on the order of their Anycast lists.
//
// An address a Ready pod cannot serve is skipped with a warning: one of a
// family the pod has no address of (there is no next hop of that family),
// one that is not global unicast, and one that is some pod's own address on
// this node (its route would collide with that pod's host route). An
// allocation without a host veth is skipped whole. annotations.Anycast
// refuses all of these at ADD, so a warning here means the store holds
// something ADD would not write; warnings come in a stable order, so a
// caller that resolves every few seconds can log them only when they change.
func Resolve(allocs []Allocation, ready map[string]bool) (map[netip.Addr][]NextHop, []Warning) {
	allocs = slices.Clone(allocs)
	slices.SortFunc(allocs, func(a, b Allocation) int {
		return cmp.Or(cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.HostIface, b.HostIface),
			a.IPv6.Compare(b.IPv6), a.IPv4.Compare(b.IPv4))
	})
	unicast := map[netip.Addr]bool{}
	for _, a := range allocs {
		unicast[a.IPv6], unicast[a.IPv4] = true, true
	}
	delete(unicast, netip.Addr{})

	desired := map[netip.Addr][]NextHop{}
	var ws []Warning
	for _, a := range allocs {
		if !ready[a.Pod] || len(a.Anycast) == 0 {
			continue
		}
		if a.HostIface == "" {
			ws = append(ws, Warning{Pod: a.Pod, Reason: "has an allocation without a host veth"})
			continue
		}
		addrs := slices.Clone(a.Anycast)
		slices.SortFunc(addrs, netip.Addr.Compare)
		for _, addr := range slices.Compact(addrs) {
			via, reason := nextHopVia(addr, a, unicast)
			if reason != "" {
				ws = append(ws, Warning{Pod: a.Pod, Addr: addr, Reason: reason})
				continue
			}
			desired[addr] = append(desired[addr], NextHop{Via: via, Dev: a.HostIface})
		}
	}
	for addr, hops := range desired {
		slices.SortFunc(hops, NextHop.Compare)
		desired[addr] = slices.Compact(hops)
	}
	return desired, ws
}

// nextHopVia is the pod's address that routes addr to it, or why there is
// none.
func nextHopVia(addr netip.Addr, a Allocation, unicast map[netip.Addr]bool) (netip.Addr, string) {
	switch {
	case addr.Zone() != "" || addr.Is4In6() || !addr.IsGlobalUnicast():
		return netip.Addr{}, "is not a global unicast address"
	case unicast[addr]:
		return netip.Addr{}, "is a pod's own address on this node"
	case addr.Is6() && !a.IPv6.IsValid():
		return netip.Addr{}, "is IPv6 but the pod has no IPv6 address"
	case addr.Is4() && !a.IPv4.IsValid():
		return netip.Addr{}, "is IPv4 but the pod has no IPv4 address"
	case addr.Is6():
		return a.IPv6, ""
	default:
		return a.IPv4, ""
	}
}

// Active is the sorted list of the addresses in a desired set: what the node
// announces over BGP (bird.Config.Anycast).
func Active(desired map[netip.Addr][]NextHop) []netip.Addr {
	return slices.SortedFunc(maps.Keys(desired), netip.Addr.Compare)
}

// Equal tells whether two desired sets are the same, so that a caller can
// skip an apply that would change nothing. Next hops are compared in order:
// Resolve sorts them.
func Equal(a, b map[netip.Addr][]NextHop) bool {
	return maps.EqualFunc(a, b, slices.Equal)
}
