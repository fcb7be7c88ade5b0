package datapath

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/fritzlab/flock/pkg/rtnl"
)

// podNetns is a pod's namespace and a netlink handle bound to it.
type podNetns struct {
	path string
	ns   netns.NsHandle
	h    *netlink.Handle
}

func openPodNetns(path string) (*podNetns, error) {
	ns, h, err := rtnl.OpenAt(path)
	if err != nil {
		return nil, err
	}
	return &podNetns{path: path, ns: ns, h: h}, nil
}

func (p *podNetns) close() {
	p.h.Close()
	p.ns.Close()
}

// Setup connects a pod (CNI ADD): it creates the veth with its ends in their
// final namespaces and installs PlanPod(a). On any error it leaves nothing
// behind. A host veth of the same name, left by an earlier ADD of the same
// container, is replaced.
func (k *Kernel) Setup(a Attachment) (Result, error) {
	k, done, err := k.forCall()
	if err != nil {
		return Result{}, err
	}
	defer done()
	if err := a.Validate(); err != nil {
		return Result{}, err
	}
	p := PlanPod(a)
	pod, err := openPodNetns(a.Netns)
	if err != nil {
		return Result{}, fmt.Errorf("set up %s: %w", p.HostIface, err)
	}
	defer pod.close()
	if err := k.deleteHostIface(p.HostIface); err != nil {
		return Result{}, fmt.Errorf("remove stale veth: %w", err)
	}

	attrs := netlink.NewLinkAttrs() // not a literal: its zero TxQLen would mean "txqueuelen 0"
	attrs.Name = p.HostIface
	attrs.MTU = p.MTU
	attrs.HardwareAddr = p.HostMAC
	veth := netlink.NewVeth(attrs)
	veth.PeerName = p.PodIface
	veth.PeerNamespace = netlink.NsFd(pod.ns)
	veth.PeerMTU = uint32(p.MTU)
	// ip link add HOST mtu M address MAC type veth peer name eth0 netns POD
	if err := k.h.LinkAdd(veth); err != nil {
		return Result{}, fmt.Errorf("add veth %s in %s: %w", p.HostIface, a.Netns, err)
	}
	res, err := k.configure(p, veth, pod, a.owner())
	if err != nil {
		// The veth is all Setup creates: deleting it takes the pod end and
		// both ends' addresses, neighbours, routes and sysctls with it.
		if derr := k.h.LinkDel(veth); derr != nil && !notFound(derr) {
			err = errors.Join(err, fmt.Errorf("roll back veth %s: %w", p.HostIface, derr))
		}
		return Result{}, fmt.Errorf("set up %s: %w", p.HostIface, err)
	}
	return res, nil
}

// configure installs p on a fresh veth. Host routes come last: once they
// exist the node sends the pod traffic, so the pod must be ready for it.
func (k *Kernel) configure(p Plan, host *netlink.Veth, pod *podNetns, owner Owner) (Result, error) {
	if alias, ok := owner.Alias(); ok {
		// ip link set HOST alias "flock:v1 c=…": who owns the veth, for a
		// restarted agent whose allocation file is damaged.
		if err := k.h.LinkSetAlias(host, alias); err != nil {
			return Result{}, fmt.Errorf("set alias of %s: %w", p.HostIface, err)
		}
	}
	if p.ProxyARP {
		if err := k.setSysctl("net/ipv4/conf/"+p.HostIface+"/proxy_arp", "1"); err != nil {
			return Result{}, err
		}
	}
	if err := k.h.LinkSetUp(host); err != nil {
		return Result{}, fmt.Errorf("set %s up: %w", p.HostIface, err)
	}
	for _, pfx := range p.HostAddrs {
		// ip addr add fe80::1/64 dev HOST nodad
		addr := &netlink.Addr{IPNet: ipNet(pfx), Flags: unix.IFA_F_NODAD}
		if err := k.h.AddrAdd(host, addr); err != nil {
			return Result{}, fmt.Errorf("add address %s to %s: %w", pfx, p.HostIface, err)
		}
	}
	res, err := configurePod(p, pod)
	if err != nil {
		return Result{}, err
	}
	for _, r := range p.HostRoutes {
		// ip route add POD/32 dev HOST scope link proto 83
		nr := &netlink.Route{LinkIndex: host.Index, Dst: ipNet(r.Dst), Protocol: RouteProtocol}
		if r.Dst.Addr().Is4() {
			nr.Scope = netlink.SCOPE_LINK
		}
		if err := k.h.RouteAdd(nr); err != nil {
			return Result{}, fmt.Errorf("add route %s dev %s: %w", r, p.HostIface, err)
		}
	}
	res.HostMAC = p.HostMAC.String()
	return res, nil
}

// configurePod sets up the pod's end: lo and the pod end up, addresses,
// permanent neighbour entries for the gateways, default routes.
func configurePod(p Plan, pod *podNetns) (Result, error) {
	h := pod.h
	lo, err := h.LinkByName("lo")
	if err != nil {
		return Result{}, fmt.Errorf("find lo in %s: %w", pod.path, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return Result{}, fmt.Errorf("set lo up in %s: %w", pod.path, err)
	}
	link, err := h.LinkByName(p.PodIface)
	if err != nil {
		return Result{}, fmt.Errorf("find %s in %s: %w", p.PodIface, pod.path, err)
	}
	// Up first: an onlink route needs its device up.
	if err := h.LinkSetUp(link); err != nil {
		return Result{}, fmt.Errorf("set %s up in %s: %w", p.PodIface, pod.path, err)
	}
	for _, pfx := range p.PodAddrs {
		addr := &netlink.Addr{IPNet: ipNet(pfx)}
		if pfx.Addr().Is6() {
			// Usable at once, not tentative for a second or more. IPv4 has
			// no DAD in the kernel.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, addr); err != nil {
			return Result{}, fmt.Errorf("add address %s to %s in %s: %w", pfx, p.PodIface, pod.path, err)
		}
	}
	for _, gw := range p.PodNeighbors {
		// ip neigh replace GW lladdr HOSTMAC dev eth0 nud permanent
		n := &netlink.Neigh{
			LinkIndex:    link.Attrs().Index,
			Family:       family(gw),
			State:        netlink.NUD_PERMANENT,
			IP:           gw.AsSlice(),
			HardwareAddr: p.HostMAC,
		}
		if err := h.NeighSet(n); err != nil {
			return Result{}, fmt.Errorf("add neighbour %s to %s in %s: %w", gw, p.PodIface, pod.path, err)
		}
	}
	for _, r := range p.PodRoutes {
		// ip route add default via GW dev eth0 [onlink] proto 83
		nr := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       ipNet(r.Dst),
			Gw:        r.Via.AsSlice(),
			Protocol:  RouteProtocol,
		}
		if r.OnLink {
			nr.Flags = int(netlink.FLAG_ONLINK)
		}
		if err := h.RouteAdd(nr); err != nil {
			return Result{}, fmt.Errorf("add route %s dev %s in %s: %w", r, p.PodIface, pod.path, err)
		}
	}
	return Result{PodMAC: link.Attrs().HardwareAddr.String(), PodIfIndex: link.Attrs().Index}, nil
}

// Teardown disconnects a pod (CNI DEL). Only the host veth's name is needed
// (HostIface, or ContainerID to derive it): deleting the host end takes the
// pod end, the host routes and everything else Setup installed with it. It
// succeeds when the veth is gone already, which is also what becomes of it
// when the pod's namespace is destroyed first.
func (k *Kernel) Teardown(a Attachment) error {
	k, done, err := k.forCall()
	if err != nil {
		return err
	}
	defer done()
	name := a.HostIface
	if name == "" {
		if a.ContainerID == "" {
			return fmt.Errorf("tear down: attachment has neither a container id nor a host iface")
		}
		name = HostIfaceName(a.ContainerID)
	}
	if err := k.deleteHostIface(name); err != nil {
		return fmt.Errorf("tear down: %w", err)
	}
	return nil
}

// deleteHostIface deletes a host veth if it exists. It refuses to delete a
// link of that name that is not a veth: flock did not create it.
func (k *Kernel) deleteHostIface(name string) error {
	link, err := k.h.LinkByName(name)
	if notFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if link.Type() != "veth" {
		return fmt.Errorf("%s is a %s, not a veth", name, link.Type())
	}
	if err := k.h.LinkDel(link); err != nil && !notFound(err) { // ip link del NAME
		return fmt.Errorf("delete veth %s: %w", name, err)
	}
	return nil
}
