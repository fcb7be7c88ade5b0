package datapath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/fritzlab/flock/pkg/anycast"
	"github.com/fritzlab/flock/pkg/rtnl"
)

// SyncAnycast makes the node's anycast routes exactly desired (see
// anycast.Resolve): one route per address, a /128 or /32 with
// AnycastRouteProtocol, via the pod's eth0 address through its host veth;
// a plain via-route for one next hop and RTA_MULTIPATH for several. It
// rewrites only the routes that differ, so a reconcile with nothing to do
// writes nothing to the kernel, and deletes the routes with
// AnycastRouteProtocol that are not desired; other routes it never touches.
// Give it the whole desired set every time; nil removes every anycast route.
//
// A next hop whose host veth does not exist (a pod being deleted) is left
// out of its route, and an invalid address or next hop is skipped; the rest
// is applied, and the error names each of them, so that a caller retries.
// A route already gone when deleted is not an error.
func (k *Kernel) SyncAnycast(desired map[netip.Addr][]anycast.NextHop) error {
	k, done, err := k.forCall()
	if err != nil {
		return fmt.Errorf("sync anycast routes: %w", err)
	}
	defer done()
	want, errs := anycastRoutes(desired)

	links, err := rtnl.Dump(k.h.LinkList)
	if err != nil {
		return fmt.Errorf("sync anycast routes: list links: %w", err)
	}
	index := map[string]int{}
	names := map[int]string{}
	for _, l := range links {
		index[l.Attrs().Name] = l.Attrs().Index
		names[l.Attrs().Index] = l.Attrs().Name
	}
	want = onExistingDevs(want, index, &errs)

	filter := &netlink.Route{Protocol: AnycastRouteProtocol, Table: unix.RT_TABLE_MAIN}
	installed, err := rtnl.Dump(func() ([]netlink.Route, error) {
		return k.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return fmt.Errorf("sync anycast routes: list routes proto %d: %w", AnycastRouteProtocol, err)
	}
	have := make([]anycastRoute, len(installed))
	for i, r := range installed {
		have[i] = installedAnycast(r, names)
	}

	plan := planAnycast(want, have)
	for _, i := range plan.Delete {
		// ip route del DST proto 84
		if err := k.h.RouteDel(&installed[i]); err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("delete anycast route %s: %w", have[i], err))
		}
	}
	for _, r := range plan.Replace {
		// ip route replace DST via POD dev flockX proto 84, or
		// ip route replace DST proto 84 nexthop via POD1 dev flockX nexthop via POD2 dev flockY
		if err := k.h.RouteReplace(netlinkAnycast(r, index)); err != nil {
			errs = append(errs, fmt.Errorf("replace anycast route %s: %w", r, err))
		}
	}
	for _, r := range plan.Add {
		// ip route add DST via POD dev flockX proto 84 (or with nexthops):
		// add, not replace, so that a route of someone else's is an error
		// rather than overwritten.
		if err := k.h.RouteAdd(netlinkAnycast(r, index)); err != nil {
			errs = append(errs, fmt.Errorf("add anycast route %s: %w", r, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sync anycast routes: %w", err)
	}
	return nil
}

// onExistingDevs drops the next hops whose device does not exist, and the
// routes left without one, reporting each dropped next hop.
func onExistingDevs(want []anycastRoute, index map[string]int, errs *[]error) []anycastRoute {
	out := want[:0]
	for _, r := range want {
		hops := slices.DeleteFunc(slices.Clone(r.Hops), func(h anycast.NextHop) bool {
			if _, ok := index[h.Dev]; ok {
				return false
			}
			*errs = append(*errs, fmt.Errorf("anycast route %s: next hop %s: no such device; routing without it", r.Dst, h))
			return true
		})
		if len(hops) > 0 {
			out = append(out, anycastRoute{Dst: r.Dst, Hops: hops})
		}
	}
	return out
}

// installedAnycast reads an installed route; names maps interface indexes
// to names (a next hop on an unknown index gets an empty Dev, which no
// wanted route has).
func installedAnycast(r netlink.Route, names map[int]string) anycastRoute {
	ar := anycastRoute{Dst: prefixOf(r.Dst, r.Family), Odd: r.Type != unix.RTN_UNICAST}
	hop := func(ifindex int, gw net.IP) {
		if gw == nil {
			ar.Odd = true
		}
		ar.Hops = append(ar.Hops, anycast.NextHop{Via: addrOf(gw), Dev: names[ifindex]})
	}
	if len(r.MultiPath) == 0 {
		ar.Odd = ar.Odd || r.Encap != nil || r.Via != nil || r.NewDst != nil
		hop(r.LinkIndex, r.Gw)
		return ar
	}
	for _, nh := range r.MultiPath {
		ar.Odd = ar.Odd || nh.Hops != 0 || nh.Encap != nil || nh.Via != nil || nh.NewDst != nil
		hop(nh.LinkIndex, nh.Gw)
	}
	return ar
}

// netlinkAnycast is r in netlink's form: a plain via-route for one next hop
// (as `ip route` shows a single-pod anycast address), RTA_MULTIPATH for
// several, in r's order.
func netlinkAnycast(r anycastRoute, index map[string]int) *netlink.Route {
	nr := &netlink.Route{Dst: ipNet(r.Dst), Protocol: AnycastRouteProtocol, Table: unix.RT_TABLE_MAIN}
	if len(r.Hops) == 1 {
		nr.LinkIndex, nr.Gw = index[r.Hops[0].Dev], r.Hops[0].Via.AsSlice()
		return nr
	}
	for _, h := range r.Hops {
		nr.MultiPath = append(nr.MultiPath, &netlink.NexthopInfo{LinkIndex: index[h.Dev], Gw: h.Via.AsSlice()})
	}
	return nr
}

// SetPodAnycast makes the global addresses on the lo of the pod whose
// network namespace is at netnsPath exactly addrs, as /128 and /32 (IPv6
// without DAD): the anycast addresses the pod serves (CNI ADD, after
// Setup). The pod answers for them on eth0 like for any local address,
// while NDP and ARP, which the node does only for the pod's eth0 address (the
// next hop of SyncAnycast's routes), never see them: so several pods, on
// one node or many, can hold one address. lo's loopback and link-local
// addresses are left alone, lo is brought up if it is down, and addresses
// already right are not touched. It checks addrs before changing anything;
// nil removes every anycast address. The pod's namespace is the pod's: on
// an error, what was changed stays, and a retried ADD converges.
func (k *Kernel) SetPodAnycast(netnsPath string, addrs []netip.Addr) error {
	want := map[netip.Prefix]bool{}
	for _, a := range addrs {
		if a.Zone() != "" || a.Is4In6() || !a.IsGlobalUnicast() {
			return fmt.Errorf("set anycast addresses in %s: %s is not a global unicast address", netnsPath, a)
		}
		want[netip.PrefixFrom(a, a.BitLen())] = true
	}
	pod, err := openPodNetns(netnsPath)
	if err != nil {
		return fmt.Errorf("set anycast addresses: %w", err)
	}
	defer pod.close()
	lo, err := pod.h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("set anycast addresses: find lo in %s: %w", netnsPath, err)
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		if err := pod.h.LinkSetUp(lo); err != nil { // ip link set lo up
			return fmt.Errorf("set anycast addresses: set lo up in %s: %w", netnsPath, err)
		}
	}
	have, err := rtnl.Dump(func() ([]netlink.Addr, error) { return pod.h.AddrList(lo, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("set anycast addresses: list addresses of lo in %s: %w", netnsPath, err)
	}
	var errs []error
	present := map[netip.Prefix]bool{}
	for _, a := range have {
		pfx := prefixOf(a.IPNet, 0)
		if !pfx.Addr().IsGlobalUnicast() {
			continue // 127.0.0.1/8, ::1: lo's own
		}
		if want[pfx] {
			present[pfx] = true
			continue
		}
		// ip addr del ADDR dev lo
		if err := pod.h.AddrDel(lo, &a); err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("delete %s from lo: %w", pfx, err))
		}
	}
	for _, a := range addrs {
		pfx := netip.PrefixFrom(a, a.BitLen())
		if present[pfx] {
			continue
		}
		present[pfx] = true // addrs may repeat an address
		// ip addr add ADDR/128 dev lo nodad
		addr := &netlink.Addr{IPNet: ipNet(pfx)}
		if a.Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := pod.h.AddrAdd(lo, addr); err != nil {
			errs = append(errs, fmt.Errorf("add %s to lo: %w", pfx, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set anycast addresses in %s: %w", netnsPath, err)
	}
	return nil
}
