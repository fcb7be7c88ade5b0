package datapath

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/fritzlab/flock/pkg/rtnl"
)

// Check verifies that what Setup installed for a is still there (CNI
// CHECK). Its error names everything missing or wrong.
func (k *Kernel) Check(a Attachment) error {
	k, done, err := k.forCall()
	if err != nil {
		return err
	}
	defer done()
	if err := a.Validate(); err != nil {
		return err
	}
	p := PlanPod(a)
	var c checker
	host, err := k.h.LinkByName(p.HostIface)
	if notFound(err) {
		return fmt.Errorf("check %s: host veth %s not found", p.HostIface, p.HostIface)
	}
	if err != nil {
		return fmt.Errorf("check %s: find host veth: %w", p.HostIface, err)
	}
	k.checkHost(&c, p, host)
	pod, err := openPodNetns(a.Netns)
	if err != nil {
		c.fail("%v", err)
	} else {
		defer pod.close()
		checkPod(&c, p, pod, host)
	}
	if len(c.problems) > 0 {
		return fmt.Errorf("check %s: %s", p.HostIface, strings.Join(c.problems, "; "))
	}
	return nil
}

// checker collects problems.
type checker struct{ problems []string }

func (c *checker) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (k *Kernel) checkHost(c *checker, p Plan, host netlink.Link) {
	name := p.HostIface
	if host.Type() != "veth" {
		c.fail("host iface %s is a %s, not a veth", name, host.Type())
	}
	if host.Attrs().Flags&net.FlagUp == 0 {
		c.fail("host veth %s is down", name)
	}
	if addrs, err := rtnl.Dump(func() ([]netlink.Addr, error) { return k.h.AddrList(host, netlink.FAMILY_ALL) }); err != nil {
		c.fail("list addresses of %s: %v", name, err)
	} else {
		checkAddrs(c, p.HostAddrs, addrs, "host veth "+name)
	}
	if p.ProxyARP {
		key := "net/ipv4/conf/" + name + "/proxy_arp"
		if v, err := k.sysctl(key); err != nil {
			c.fail("%v", err)
		} else if v != "1" {
			c.fail("sysctl %s is %s, not 1", key, v)
		}
	}
	routes, err := rtnl.Dump(func() ([]netlink.Route, error) {
		return k.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: host.Attrs().Index}, netlink.RT_FILTER_OIF)
	})
	if err != nil {
		c.fail("list routes via %s: %v", name, err)
		return
	}
	checkRoutes(c, p.HostRoutes, routes, "dev "+name)
}

func checkPod(c *checker, p Plan, pod *podNetns, host netlink.Link) {
	where := p.PodIface + " in " + pod.path
	link, err := pod.h.LinkByName(p.PodIface)
	if err != nil {
		c.fail("pod iface %s: %v", where, err)
		return
	}
	// A veth's IFLA_LINK is its peer's index, in the peer's namespace.
	if link.Type() != "veth" || link.Attrs().ParentIndex != host.Attrs().Index {
		c.fail("pod iface %s is not the peer of %s", where, p.HostIface)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		c.fail("pod iface %s is down", where)
	}
	if addrs, err := rtnl.Dump(func() ([]netlink.Addr, error) { return pod.h.AddrList(link, netlink.FAMILY_ALL) }); err != nil {
		c.fail("list addresses of %s: %v", where, err)
	} else {
		checkAddrs(c, p.PodAddrs, addrs, "pod iface "+where)
	}
	neighs, err := rtnl.Dump(func() ([]netlink.Neigh, error) { return pod.h.NeighList(link.Attrs().Index, netlink.FAMILY_ALL) })
	if err != nil {
		c.fail("list neighbours of %s: %v", where, err)
	}
	for _, gw := range p.PodNeighbors {
		if !hasNeigh(neighs, gw, host.Attrs().HardwareAddr) {
			c.fail("permanent neighbour %s lladdr %s missing on %s", gw, host.Attrs().HardwareAddr, where)
		}
	}
	routes, err := rtnl.Dump(func() ([]netlink.Route, error) {
		return pod.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: link.Attrs().Index}, netlink.RT_FILTER_OIF)
	})
	if err != nil {
		c.fail("list routes in %s: %v", pod.path, err)
		return
	}
	checkRoutes(c, p.PodRoutes, routes, "dev "+where)
}

func checkAddrs(c *checker, want []netip.Prefix, have []netlink.Addr, where string) {
	for _, w := range want {
		found := false
		for _, a := range have {
			found = found || prefixOf(a.IPNet, 0) == w
		}
		if !found {
			c.fail("address %s missing on %s", w, where)
		}
	}
}

func hasNeigh(neighs []netlink.Neigh, ip netip.Addr, mac net.HardwareAddr) bool {
	for _, n := range neighs {
		if addrOf(n.IP) == ip && n.State&netlink.NUD_PERMANENT != 0 && bytes.Equal(n.HardwareAddr, mac) {
			return true
		}
	}
	return false
}

// checkRoutes looks for each wanted route, with flock's protocol, among the
// routes of one device.
func checkRoutes(c *checker, want []Route, have []netlink.Route, where string) {
	for _, w := range want {
		found := false
		for _, r := range have {
			found = found || (r.Protocol == RouteProtocol &&
				prefixOf(r.Dst, r.Family) == w.Dst &&
				addrOf(r.Gw) == w.Via &&
				(r.Flags&unix.RTNH_F_ONLINK != 0) == w.OnLink)
		}
		if !found {
			c.fail("route %s %s proto %d missing", w, where, RouteProtocol)
		}
	}
}
