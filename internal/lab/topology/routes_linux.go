package topology

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/fritzlab/flock/pkg/rtnl"
)

// RouteProtocol tags the router's static routes (ip route show proto 84), so
// SetStaticRoutes replaces exactly its own routes. flock's agent uses 83.
const RouteProtocol = 84

// SetStaticRoutes makes the router's static routes exactly pools: each prefix
// routed via the link address of the node it names. Routes of earlier calls
// that are not in pools are removed. It stands in for BGP until BGP arrives.
func (t *Topology) SetStaticRoutes(pools map[string][]netip.Prefix) error {
	want := map[string]*netlink.Route{}
	for node, prefixes := range pools {
		n, ok := t.Node(node)
		if !ok {
			return fmt.Errorf("static routes: no node %s in the topology", node)
		}
		for _, p := range prefixes {
			p = p.Masked()
			gw := n.Addr6.Addr()
			if p.Addr().Is4() {
				gw = n.Addr4.Addr()
			}
			want[p.String()] = &netlink.Route{
				Dst:      &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
				Gw:       gw.AsSlice(),
				Protocol: RouteProtocol,
			}
		}
	}
	return withHandle(t.RouterNetns(), func(h *netlink.Handle) error {
		have, err := ownRoutes(h)
		if err != nil {
			return err
		}
		var errs []error
		for _, r := range have {
			if w, ok := want[r.Dst.String()]; ok && w.Gw.Equal(r.Gw) {
				delete(want, r.Dst.String())
				continue
			}
			if err := h.RouteDel(&r); err != nil {
				errs = append(errs, fmt.Errorf("delete route %s: %w", r.Dst, err))
			}
		}
		for dst, r := range want {
			// ip route replace DST via GW proto 84 (the gateway's link is found by the kernel)
			if err := h.RouteReplace(r); err != nil {
				errs = append(errs, fmt.Errorf("route %s via %s: %w", dst, r.Gw, err))
			}
		}
		return errors.Join(errs...)
	})
}

// StaticRoutes returns the router's routes of RouteProtocol, as "DST via GW".
func (t *Topology) StaticRoutes() ([]string, error) {
	var out []string
	err := withHandle(t.RouterNetns(), func(h *netlink.Handle) error {
		routes, err := ownRoutes(h)
		for _, r := range routes {
			out = append(out, fmt.Sprintf("%s via %s", r.Dst, r.Gw))
		}
		return err
	})
	return out, err
}

func ownRoutes(h *netlink.Handle) ([]netlink.Route, error) {
	filter := &netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	routes, err := rtnl.Dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes of protocol %d: %w", RouteProtocol, err)
	}
	return routes, nil
}
