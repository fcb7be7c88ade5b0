package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/fritzlab/flock/pkg/rtnl"
)

// Attached lists every flock host veth of the node with the pod addresses
// it carries, sorted by name: the host routes with RouteProtocol via it,
// and, when its alias names a netns that can be opened, the addresses of
// the pod end, the pod's IPv4 gateway and the anycast addresses on its lo.
// It changes nothing.
func (k *Kernel) Attached() ([]Live, error) {
	k, done, err := k.forCall()
	if err != nil {
		return nil, err
	}
	defer done()
	links, err := rtnl.Dump(k.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	byIndex := map[int]*Live{}
	var out []*Live
	for _, l := range links {
		a := l.Attrs()
		if l.Type() != "veth" || !isHostIface(a.Name) {
			continue
		}
		lv := &Live{HostIface: a.Name, MTU: a.MTU}
		lv.Owner, lv.OwnerErr = ownerOf(a.Name, a.Alias)
		byIndex[a.Index] = lv
		out = append(out, lv)
	}
	filter := &netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	routes, err := rtnl.Dump(func() ([]netlink.Route, error) {
		return k.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes proto %d: %w", RouteProtocol, err)
	}
	for _, r := range routes {
		lv, ok := byIndex[r.LinkIndex]
		if !ok || r.Dst == nil {
			continue
		}
		if p := prefixOf(r.Dst, r.Family); p.IsValid() && p.IsSingleIP() {
			lv.Addrs = append(lv.Addrs, p.Addr())
		}
	}
	res := make([]Live, 0, len(out))
	for _, lv := range out {
		if lv.OwnerErr == nil && lv.Owner.Netns != "" {
			// Best effort: a netns that cannot be read still leaves the
			// host routes to go by.
			_ = readPodEnd(lv)
		}
		slices.SortFunc(lv.Addrs, netip.Addr.Compare)
		lv.Addrs = slices.Compact(lv.Addrs)
		res = append(res, *lv)
	}
	slices.SortFunc(res, func(a, b Live) int { return strings.Compare(a.HostIface, b.HostIface) })
	return res, nil
}

// readPodEnd adds what the pod's end of lv says: its addresses, its IPv4
// default gateway, the global addresses on its lo.
func readPodEnd(lv *Live) error {
	pod, err := openPodNetns(lv.Owner.Netns)
	if err != nil {
		return err
	}
	defer pod.close()
	ifname := lv.Owner.IfName
	if ifname == "" {
		ifname = "eth0"
	}
	link, err := pod.h.LinkByName(ifname)
	if err != nil {
		return err
	}
	addrs, err := rtnl.Dump(func() ([]netlink.Addr, error) { return pod.h.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if ip := addrOf(a.IP); ip.IsGlobalUnicast() {
			lv.Addrs = append(lv.Addrs, ip)
		}
	}
	routes, err := rtnl.Dump(func() ([]netlink.Route, error) { return pod.h.RouteList(link, netlink.FAMILY_V4) })
	if err != nil {
		return err
	}
	for _, r := range routes {
		if (r.Dst == nil || prefixOf(r.Dst, r.Family).Bits() == 0) && r.Gw != nil {
			lv.Gateway4 = addrOf(r.Gw)
		}
	}
	lo, err := pod.h.LinkByName("lo")
	if err != nil {
		return err
	}
	loAddrs, err := rtnl.Dump(func() ([]netlink.Addr, error) { return pod.h.AddrList(lo, netlink.FAMILY_ALL) })
	if err != nil {
		return err
	}
	for _, a := range loAddrs {
		if ip := addrOf(a.IP); ip.IsGlobalUnicast() {
			lv.Anycast = append(lv.Anycast, ip)
		}
	}
	slices.SortFunc(lv.Anycast, netip.Addr.Compare)
	return nil
}

// NetnsExists tells whether path is a network namespace now: a bind mount
// of one (/run/netns/x) or a process's (/proc/PID/ns/net). A path that is
// gone, or a file that is no namespace (a runtime removed the mount but not
// the file), is not; any other error is returned.
func (k *Kernel) NetnsExists(path string) (bool, error) {
	var st unix.Statfs_t
	err := unix.Statfs(path, &st)
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ESRCH):
		return false, nil
	case err != nil:
		return false, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	return st.Type == unix.NSFS_MAGIC, nil
}
