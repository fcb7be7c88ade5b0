package datapath

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// Plan is everything Setup installs for one pod and Check verifies. Lists
// are IPv6 first, then IPv4.
type Plan struct {
	// HostIface is the host end of the veth, in the agent's netns.
	HostIface string
	// HostMAC is set on the host end explicitly (see the package comment).
	HostMAC net.HardwareAddr
	// PodIface is the pod end, created directly in the pod's netns.
	PodIface string
	// MTU of both ends.
	MTU int

	// HostAddrs go on the host end without DAD: GatewayIPv6/64.
	HostAddrs []netip.Prefix
	// ProxyARP turns proxy_arp on for the host end (IPv4 pods).
	ProxyARP bool
	// HostRoutes go via the host end, scope link: the pod's /128 and /32.
	HostRoutes []Route

	// PodAddrs go on the pod end without DAD: the pod's /128 and /32.
	PodAddrs []netip.Prefix
	// PodNeighbors are permanent neighbour entries on the pod end, each
	// pointing at HostMAC: the pod's gateways.
	PodNeighbors []netip.Addr
	// PodRoutes go via the pod end: the default routes.
	PodRoutes []Route
}

// Route is a route via one interface (which one is implied by the list it is
// in); every route carries RouteProtocol.
type Route struct {
	Dst netip.Prefix
	// Via is the next hop; the zero Addr means Dst is directly on the link.
	Via netip.Addr
	// OnLink sets RTNH_F_ONLINK: Via is on the link although no address of
	// the interface covers it (the pod's /32 covers nothing).
	OnLink bool
}

func (r Route) String() string {
	s := r.Dst.String()
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	if r.OnLink {
		s += " onlink"
	}
	return s
}

// PlanPod decides what Setup installs for a. It assumes a valid Attachment
// (see Validate) and plans a family only when a has an address of it.
func PlanPod(a Attachment) Plan {
	p := Plan{
		HostIface: a.hostIface(),
		HostMAC:   hostMAC(a.ContainerID),
		PodIface:  a.podIface(),
		MTU:       a.mtu(),
	}
	if a.IPv6.IsValid() {
		p.HostAddrs = append(p.HostAddrs, netip.PrefixFrom(GatewayIPv6, 64))
		p.HostRoutes = append(p.HostRoutes, Route{Dst: netip.PrefixFrom(a.IPv6, 128)})
		p.PodAddrs = append(p.PodAddrs, netip.PrefixFrom(a.IPv6, 128))
		p.PodNeighbors = append(p.PodNeighbors, GatewayIPv6)
		p.PodRoutes = append(p.PodRoutes, Route{Dst: netip.PrefixFrom(netip.IPv6Unspecified(), 0), Via: GatewayIPv6})
	}
	if a.IPv4.IsValid() {
		p.ProxyARP = true
		p.HostRoutes = append(p.HostRoutes, Route{Dst: netip.PrefixFrom(a.IPv4, 32)})
		p.PodAddrs = append(p.PodAddrs, netip.PrefixFrom(a.IPv4, 32))
		p.PodNeighbors = append(p.PodNeighbors, a.Gateway4)
		p.PodRoutes = append(p.PodRoutes, Route{Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Via: a.Gateway4, OnLink: true})
	}
	return p
}

// PoolPlan is the node-wide state SyncPools keeps; both lists are sorted.
type PoolPlan struct {
	// Blackholes are the pools themselves, blackholed with RouteProtocol so
	// traffic to unassigned addresses dies here instead of following the
	// default route back out (and looping between routers).
	Blackholes []netip.Prefix
	// LoAddrs are the IPv4 pool gateways as /32s on lo, labelled LoLabel.
	LoAddrs []netip.Prefix
}

// PlanPools decides what SyncPools keeps for p.
func PlanPools(p Pools) (PoolPlan, error) {
	var pp PoolPlan
	if p.Pool6.IsValid() {
		if !p.Pool6.Addr().Is6() || p.Pool6.Addr().Is4In6() || p.Pool6.Bits() > 127 {
			return PoolPlan{}, fmt.Errorf("ipv6 pool %s is not an IPv6 prefix of /127 or shorter", p.Pool6)
		}
		pp.Blackholes = append(pp.Blackholes, p.Pool6.Masked())
	}
	if p.Pool4.IsValid() {
		// A /31 or /32 has no room for the gateway and a pod.
		if !p.Pool4.Addr().Is4() || p.Pool4.Bits() > 30 {
			return PoolPlan{}, fmt.Errorf("ipv4 pool %s is not an IPv4 prefix of /30 or shorter", p.Pool4)
		}
		pp.Blackholes = append(pp.Blackholes, p.Pool4.Masked())
		pp.LoAddrs = append(pp.LoAddrs, netip.PrefixFrom(PoolGateway4(p.Pool4), 32))
	}
	for _, d := range p.Draining {
		if !d.IsValid() {
			return PoolPlan{}, fmt.Errorf("draining pool %s is not a prefix", d)
		}
		pp.Blackholes = append(pp.Blackholes, d.Masked())
	}
	for _, gw := range p.DrainGateways4 {
		if !gw.Is4() {
			return PoolPlan{}, fmt.Errorf("draining pool gateway %s is not an IPv4 address", gw)
		}
		pp.LoAddrs = append(pp.LoAddrs, netip.PrefixFrom(gw, 32))
	}
	slices.SortFunc(pp.Blackholes, comparePrefix)
	pp.Blackholes = slices.Compact(pp.Blackholes)
	slices.SortFunc(pp.LoAddrs, comparePrefix)
	pp.LoAddrs = slices.Compact(pp.LoAddrs)
	return pp, nil
}

// comparePrefix orders prefixes by address, then length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
