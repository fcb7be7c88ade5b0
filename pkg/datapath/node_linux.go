package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/fritzlab/flock/pkg/rtnl"
)

// Init prepares the node: forwarding on for both families (a new namespace
// starts with it off), lo up (the IPv4 gateways live on it; a fresh
// namespace starts with it down), and the L4 multipath hash so that one
// flow sticks to one anycast backend while flows spread over all.
//
// Note that IPv6 forwarding makes the kernel ignore router advertisements on
// links with accept_ra=1: a node taking its default route from RAs needs
// accept_ra=2 on its uplink.
func (k *Kernel) Init() error {
	for _, key := range []string{"net/ipv6/conf/all/forwarding", "net/ipv4/ip_forward"} {
		if err := k.setSysctl(key, "1"); err != nil {
			return err
		}
	}
	// Best effort: anycast still works with the L3 hash, only less evenly.
	for _, key := range []string{"net/ipv4/fib_multipath_hash_policy", "net/ipv6/fib_multipath_hash_policy"} {
		if err := k.setSysctl(key, "1"); err != nil {
			k.log.Warn("multipath hash policy not set", "key", key, "err", err)
		}
	}
	lo, err := k.h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := k.h.LinkSetUp(lo); err != nil { // ip link set lo up
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// HostIfaces lists the host veths flock created that exist now, sorted, so
// the agent can delete those of pods it no longer knows.
func (k *Kernel) HostIfaces() ([]string, error) {
	links, err := rtnl.Dump(k.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var names []string
	for _, l := range links {
		if l.Type() == "veth" && isHostIface(l.Attrs().Name) {
			names = append(names, l.Attrs().Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// SyncPools makes the node's flock-owned pool state exactly PlanPools(p):
// blackhole routes for the pools (protocol RouteProtocol) and the IPv4
// gateways on lo (label LoLabel). It removes flock-owned blackholes and lo
// addresses that are not wanted, adds the missing ones, and touches nothing
// that is already right or not flock's. The zero Pools removes it all.
func (k *Kernel) SyncPools(p Pools) error {
	plan, err := PlanPools(p)
	if err != nil {
		return fmt.Errorf("sync pools: %w", err)
	}
	return errors.Join(k.syncBlackholes(plan.Blackholes), k.syncLoAddrs(plan.LoAddrs))
}

func (k *Kernel) syncBlackholes(want []netip.Prefix) error {
	filter := &netlink.Route{Protocol: RouteProtocol, Type: unix.RTN_BLACKHOLE, Table: unix.RT_TABLE_MAIN}
	have, err := rtnl.Dump(func() ([]netlink.Route, error) {
		return k.h.RouteListFiltered(netlink.FAMILY_ALL, filter,
			netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TYPE|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return fmt.Errorf("list blackhole routes proto %d: %w", RouteProtocol, err)
	}
	var errs []error
	present := map[netip.Prefix]bool{}
	for _, r := range have {
		dst := prefixOf(r.Dst, r.Family)
		if slices.Contains(want, dst) && !present[dst] {
			present[dst] = true
			continue
		}
		// ip route del blackhole DST proto 83
		if err := k.h.RouteDel(&r); err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("delete blackhole route %s: %w", dst, err))
		}
	}
	for _, dst := range want {
		if present[dst] {
			continue
		}
		// ip route add blackhole DST proto 83
		r := &netlink.Route{Dst: ipNet(dst), Type: unix.RTN_BLACKHOLE, Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
		if err := k.h.RouteAdd(r); err != nil {
			errs = append(errs, fmt.Errorf("add blackhole route %s: %w", dst, err))
		}
	}
	return errors.Join(errs...)
}

func (k *Kernel) syncLoAddrs(want []netip.Prefix) error {
	lo, err := k.h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	have, err := rtnl.Dump(func() ([]netlink.Addr, error) { return k.h.AddrList(lo, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("list addresses of lo: %w", err)
	}
	var errs []error
	present := map[netip.Prefix]bool{}
	for _, a := range have {
		if a.Label != LoLabel {
			continue // not flock's
		}
		pfx := prefixOf(a.IPNet, netlink.FAMILY_V4)
		if slices.Contains(want, pfx) {
			present[pfx] = true
			continue
		}
		// ip addr del GW/32 dev lo
		if err := k.h.AddrDel(lo, &a); err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("delete address %s from lo: %w", pfx, err))
		}
	}
	for _, pfx := range want {
		if present[pfx] {
			continue
		}
		// ip addr add GW/32 dev lo label lo:flock
		if err := k.h.AddrAdd(lo, &netlink.Addr{IPNet: ipNet(pfx), Label: LoLabel}); err != nil {
			errs = append(errs, fmt.Errorf("add address %s label %s to lo: %w", pfx, LoLabel, err))
		}
	}
	return errors.Join(errs...)
}
