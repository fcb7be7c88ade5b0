package datapath

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/fritzlab/flock/pkg/anycast"
)

// AnycastRouteProtocol is the route protocol of flock's anycast routes
// (`ip route show proto 84` lists exactly them). It is not RouteProtocol so
// that SyncAnycast owns its routes by tag alone: pod host routes, pool
// blackholes and anycast routes are all /128 and /32 routes of flock's, and
// telling them apart by shape (a gateway or not) would let a change to one
// kind delete the other. 84 is unassigned in /etc/iproute2/rt_protos, next
// to RouteProtocol.
const AnycastRouteProtocol = 84

// anycastRoute is one anycast route: a host prefix and its next hops, sorted
// and without duplicates.
type anycastRoute struct {
	Dst  netip.Prefix
	Hops []anycast.NextHop
	// Odd marks an installed route of a shape SyncAnycast never makes (a
	// weight, an encapsulation, a next hop without a gateway, not unicast):
	// it is replaced whatever its next hops.
	Odd bool
}

func (r anycastRoute) String() string {
	s := r.Dst.String()
	for _, h := range r.Hops {
		s += " " + h.String()
	}
	return s
}

// anycastRoutes turns a desired set into routes, sorted by destination. An
// address that is not a global unicast address, and a next hop of another
// family or with an invalid device name, is left out and reported: the rest
// is still applied. An address with no next hop left is absent.
func anycastRoutes(desired map[netip.Addr][]anycast.NextHop) ([]anycastRoute, []error) {
	var (
		routes []anycastRoute
		errs   []error
	)
	for _, addr := range slices.SortedFunc(maps.Keys(desired), netip.Addr.Compare) {
		if addr.Zone() != "" || addr.Is4In6() || !addr.IsGlobalUnicast() {
			errs = append(errs, fmt.Errorf("anycast address %s: not a global unicast address", addr))
			continue
		}
		var hops []anycast.NextHop
		for _, h := range desired[addr] {
			switch {
			case h.Via.Is4() != addr.Is4() || h.Via.Is4In6() || h.Via.Zone() != "" || !h.Via.IsGlobalUnicast():
				errs = append(errs, fmt.Errorf("anycast address %s: next hop %s: not a global unicast address of the same family", addr, h))
			case !validIfName(h.Dev):
				errs = append(errs, fmt.Errorf("anycast address %s: next hop %s: invalid device name", addr, h))
			default:
				hops = append(hops, h)
			}
		}
		if len(hops) == 0 {
			continue
		}
		slices.SortFunc(hops, anycast.NextHop.Compare)
		routes = append(routes, anycastRoute{Dst: netip.PrefixFrom(addr, addr.BitLen()), Hops: slices.Compact(hops)})
	}
	return routes, errs
}

// anycastPlan is what SyncAnycast changes; each list is in the order of
// its destinations.
type anycastPlan struct {
	// Delete are indexes into the installed routes: those not wanted, and
	// all of a destination's routes when there is more than one.
	Delete []int
	// Replace are wanted routes whose destination has one owned route,
	// different from it (`ip route replace`: no moment without a route).
	Replace []anycastRoute
	// Add are wanted routes whose destination has no owned route (`ip route
	// add`, which fails rather than overwrite a route that is not flock's).
	Add []anycastRoute
}

// planAnycast compares the wanted routes with the owned routes installed
// (in any order, their next hops in any order) and returns the least that
// makes them equal: nothing when they are.
func planAnycast(want, have []anycastRoute) anycastPlan {
	byDst := map[netip.Prefix][]int{}
	for i, r := range have {
		byDst[r.Dst] = append(byDst[r.Dst], i)
	}
	var p anycastPlan
	wanted := map[netip.Prefix]bool{}
	for _, w := range want {
		wanted[w.Dst] = true
		switch idx := byDst[w.Dst]; {
		case len(idx) == 0:
			p.Add = append(p.Add, w)
		case len(idx) > 1:
			// Not something SyncAnycast makes (say, one route per metric):
			// start over rather than guess which one the kernel uses.
			p.Delete = append(p.Delete, idx...)
			p.Add = append(p.Add, w)
		case have[idx[0]].Odd || !sameHops(have[idx[0]].Hops, w.Hops):
			p.Replace = append(p.Replace, w)
		}
	}
	for i, r := range have {
		if !wanted[r.Dst] {
			p.Delete = append(p.Delete, i)
		}
	}
	slices.SortFunc(p.Delete, func(a, b int) int {
		return cmp.Or(comparePrefix(have[a].Dst, have[b].Dst), cmp.Compare(a, b))
	})
	return p
}

// sameHops compares next hops as sets: the order the kernel reports them
// in is not a difference worth a write.
func sameHops(have, want []anycast.NextHop) bool {
	have = slices.Clone(have)
	slices.SortFunc(have, anycast.NextHop.Compare)
	return slices.Equal(have, want)
}
