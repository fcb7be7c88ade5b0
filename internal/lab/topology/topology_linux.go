package topology

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Topology is a created lab network.
type Topology struct {
	Config
	Nodes []Node
}

// Create builds the namespaces, veths, addresses and default routes of c.
// Leftovers of an earlier topology with the same prefix must be removed
// first (Remove); on error, everything made so far is removed.
func Create(c Config) (t *Topology, err error) {
	nodes, err := c.Plan()
	if err != nil {
		return nil, err
	}
	t = &Topology{Config: c, Nodes: nodes}
	defer func() {
		if err != nil {
			Remove(c.Prefix)
		}
	}()
	router := c.RouterNetns()
	if err := addNetns(router); err != nil {
		return nil, err
	}
	for _, key := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
		if err := setSysctl(router, key, "1"); err != nil {
			return nil, err
		}
	}
	// ECMP over addresses and ports, hashed by the router itself (policy 3,
	// custom fields, with a seed of its own). With policy 1 Linux reuses the
	// flow hash a packet already carries, and in the lab a pod's TCP socket
	// hash travels with its packets through the veths: router and node
	// would then hash every flow alike and send all flows the router gave
	// a node to one of its pods (ECMP polarisation). A real router hashes
	// on its own, as this one now does. Best effort on older kernels.
	for key, value := range map[string]string{
		"net/ipv4/fib_multipath_hash_policy": "3", "net/ipv6/fib_multipath_hash_policy": "3",
		"net/ipv4/fib_multipath_hash_fields": "55", "net/ipv6/fib_multipath_hash_fields": "55",
		"net/ipv4/fib_multipath_hash_seed": "2654435769",
	} {
		if err := setSysctl(router, key, value); err != nil {
			_ = setSysctl(router, key, "1")
		}
	}
	for _, n := range nodes {
		if err := addNetns(n.Netns); err != nil {
			return nil, err
		}
		if err := wire(router, n); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// wire connects node n to the router: the veth, its addresses on both ends,
// and the node's default routes via the router.
func wire(router string, n Node) error {
	nodeNs, err := netns.GetFromName(n.Netns)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", n.Netns, err)
	}
	defer nodeNs.Close()
	err = withHandle(router, func(h *netlink.Handle) error {
		// ip link add n<i> type veth peer name uplink netns <node>
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: n.RouterIf},
			PeerName:      UplinkName,
			PeerNamespace: netlink.NsFd(nodeNs),
		}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s/%s for %s: %w", n.RouterIf, UplinkName, n.Name, err)
		}
		return configure(h, n.RouterIf, n.RouterAddr6, n.RouterAddr4)
	})
	if err != nil {
		return err
	}
	return withHandle(n.Netns, func(h *netlink.Handle) error {
		if err := configure(h, UplinkName, n.Addr6, n.Addr4); err != nil {
			return err
		}
		link, err := h.LinkByName(UplinkName)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", UplinkName, n.Netns, err)
		}
		for _, gw := range []netip.Prefix{n.RouterAddr6, n.RouterAddr4} {
			// ip route add default via <router> dev uplink
			dst := &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
			if gw.Addr().Is4() {
				dst = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
			}
			r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: gw.Addr().AsSlice()}
			if err := h.RouteAdd(r); err != nil {
				return fmt.Errorf("add default route via %s in %s: %w", gw.Addr(), n.Netns, err)
			}
		}
		return nil
	})
}

// configure puts the addresses on the link (without DAD, so they are usable
// at once) and sets it up.
func configure(h *netlink.Handle, name string, addrs ...netip.Prefix) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	for _, a := range addrs {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}}
		if a.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("add %s to %s: %w", a, name, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// Remove deletes every namespace whose name starts with prefix+"-" (router,
// nodes, and pods the lab made); the veths and routes live in them and go
// with them. Processes still running in them must be stopped first, or the
// namespaces outlive their names.
func Remove(prefix string) error {
	names, err := ListNetns(prefix + "-")
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		errs = append(errs, DeleteNetns(name))
	}
	return errors.Join(errs...)
}

// Destroy removes the topology (Remove of its prefix).
func (t *Topology) Destroy() error { return Remove(t.Prefix) }

// Node returns the node named name.
func (t *Topology) Node(name string) (Node, bool) {
	i := slices.IndexFunc(t.Nodes, func(n Node) bool { return n.Name == name })
	if i < 0 {
		return Node{}, false
	}
	return t.Nodes[i], true
}
