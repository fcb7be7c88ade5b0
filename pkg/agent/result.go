package agent

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/store"
)

// buildResult is the complete CNI result of an ADD: both veth ends, the
// pod's addresses on its interface (index 1) with their gateways, and the
// default routes, so chained plugins (portmap, bandwidth) find what they need.
func buildResult(r store.Record, dp datapath.Result) *current.Result {
	podIdx := 1
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: r.HostIface, Mac: dp.HostMAC},
			{Name: r.IfName, Mac: dp.PodMAC, Sandbox: r.Netns},
		},
	}
	add := func(ip, gw netip.Addr, bits int) {
		res.IPs = append(res.IPs, &current.IPConfig{
			Interface: &podIdx,
			Address:   net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(bits, bits)},
			Gateway:   gw.AsSlice(),
		})
		res.Routes = append(res.Routes, &types.Route{
			Dst: net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)},
			GW:  gw.AsSlice(),
		})
	}
	if r.IPv6.IsValid() {
		add(r.IPv6, datapath.GatewayIPv6, 128)
	}
	if r.IPv4.IsValid() {
		add(r.IPv4, r.Gateway4, 32)
	}
	return res
}

// checkPrevResult compares the addresses the runtime remembers with the
// allocation.
func checkPrevResult(r store.Record, prev *current.Result) error {
	var got []netip.Addr
	for _, ipc := range prev.IPs {
		ip, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			return fmt.Errorf("prevResult address %q is not an IP", ipc.Address.IP)
		}
		got = append(got, ip.Unmap())
	}
	want := addrs(r)
	slices.SortFunc(got, netip.Addr.Compare)
	slices.SortFunc(want, netip.Addr.Compare)
	if !slices.Equal(got, want) {
		return fmt.Errorf("prevResult has %v, container %s/%s has %v", got, r.ContainerID, r.IfName, want)
	}
	return nil
}
