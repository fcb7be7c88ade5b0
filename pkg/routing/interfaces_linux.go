package routing

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/rtnl"
)

// Interfaces reads the node's interface addresses with netlink (`ip addr`)
// in the namespace it was created in: the global ones, on every link but lo
// (the pools' gateways live there) and flock's own pod veths (link-local
// only, and as many as there are pods). The result is sorted, so an
// unchanged node renders an unchanged config.
type Interfaces struct {
	h *netlink.Handle
}

// NewInterfaces binds an Interfaces to the caller's network namespace.
func NewInterfaces() (*Interfaces, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	return &Interfaces{h: h}, nil
}

// NewInterfacesAt binds an Interfaces to the network namespace at path
// (/run/netns/x), which the caller's threads need not be in.
func NewInterfacesAt(path string) (*Interfaces, error) {
	ns, h, err := rtnl.OpenAt(path)
	if err != nil {
		return nil, err
	}
	ns.Close() // the socket keeps its namespace
	return &Interfaces{h: h}, nil
}

// Close releases the netlink socket.
func (i *Interfaces) Close() { i.h.Close() }

// Addresses returns the node's global addresses with their prefix lengths.
func (i *Interfaces) Addresses() ([]netip.Prefix, error) {
	links, err := rtnl.Dump(func() ([]netlink.Link, error) { return i.h.LinkList() })
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	skip := map[int]bool{}
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || (l.Type() == "veth" && strings.HasPrefix(a.Name, datapath.HostIfacePrefix)) {
			skip[a.Index] = true
		}
	}
	addrs, err := rtnl.Dump(func() ([]netlink.Addr, error) { return i.h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if skip[a.LinkIndex] || a.IPNet == nil || a.Scope != unix.RT_SCOPE_UNIVERSE {
			continue
		}
		// A failed DAD leaves an address nobody can use; a temporary
		// (privacy) IPv6 address comes and goes, and would churn the config.
		if a.Flags&unix.IFA_F_DADFAILED != 0 || (a.IP.To4() == nil && a.Flags&unix.IFA_F_TEMPORARY != 0) {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		p := netip.PrefixFrom(ip.Unmap(), ones)
		if p.IsValid() && p.Addr().IsGlobalUnicast() {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out), nil
}

// DefaultGateways returns the gateway of the node's default route of each
// family (`ip -6 route show default`, `ip -4 …`), of several the one with
// the lowest metric; a multipath default route gives its lowest next hop.
func (i *Interfaces) DefaultGateways() ([]netip.Addr, error) {
	var out []netip.Addr
	for _, fam := range []int{netlink.FAMILY_V6, netlink.FAMILY_V4} {
		filter := &netlink.Route{Table: unix.RT_TABLE_MAIN}
		routes, err := rtnl.Dump(func() ([]netlink.Route, error) {
			return i.h.RouteListFiltered(fam, filter, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		var best netip.Addr
		bestPrio := -1
		for _, r := range routes {
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					continue
				}
			}
			gws := []net.IP{r.Gw}
			if len(r.MultiPath) > 0 {
				gws = gws[:0]
				for _, nh := range r.MultiPath {
					gws = append(gws, nh.Gw)
				}
			}
			var gw netip.Addr
			for _, ip := range gws {
				if a, ok := netip.AddrFromSlice(ip); ok && (!gw.IsValid() || a.Unmap().Less(gw)) {
					gw = a.Unmap()
				}
			}
			if gw.IsValid() && (bestPrio < 0 || r.Priority < bestPrio) {
				best, bestPrio = gw, r.Priority
			}
		}
		if best.IsValid() {
			out = append(out, best)
		}
	}
	return out, nil
}
