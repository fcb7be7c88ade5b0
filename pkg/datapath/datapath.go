// Package datapath is flock's per-pod kernel data path: a veth pair per pod,
// the pod's /128 and /32 on its end, host routes to them on the other, and
// blackhole routes for the node's pools.
//
// What gets installed is decided by pure functions (PlanPod, PlanPools) over
// plain values, so the decisions are table-tested without a kernel; Kernel
// (Linux only) applies them through netlink.
//
// Gateways. IPv6 pods route via GatewayIPv6 (fe80::1), present without DAD
// on every host veth. IPv4 pods route on-link via their pool's gateway
// (PoolGateway4), which SyncPools puts as a /32 on the node's lo, labelled
// LoLabel. The node thus owns the gateway address: it answers ARP and ping
// for it on every veth, whatever else the node routes. (proxy_arp alone
// answers only for an address the node routes out of another interface;
// a blackhole for the pool does not count, and an IPv6-underlay node may
// have no IPv4 default route.) Being the first global IPv4 address on lo,
// the gateway is also the source of the node's own IPv4 traffic to its pods.
// The host veth has proxy_arp on as well, so ARP for any other address the
// node can route still gets the node's answer.
//
// Neighbours. Pods do not depend on ARP or NDP to reach their gateway: each
// pod gets permanent neighbour entries for its gateways, pointing at the host
// veth's MAC. ARP for an address on lo is not answered on a veth when
// arp_ignore is 1 on "all" (kube-proxy's strict ARP sets it, and "all" wins
// over the veth's own value), and the entries also save the first packet a
// round trip. The host veth's MAC is set explicitly at creation (derived
// from the container id) so that udev's MACAddressPolicy, which rewrites the
// MAC of randomly addressed new links, leaves it alone and the pod's entries
// stay right. All pod and gateway addresses are added without DAD, so they
// are usable the moment Setup returns.
package datapath

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"

	"github.com/fritzlab/flock/pkg/ipam"
)

// RouteProtocol is flock's route protocol number (RTPROT_*): every route
// flock installs carries it, so flock finds and prunes only its own routes,
// and `ip route show proto 83` lists them. 83 is unassigned in
// /etc/iproute2/rt_protos; others in use nearby: zebra 11, bird 12, calico
// 80, FRR's bgp 186.
const RouteProtocol = 83

// GatewayIPv6 is the IPv6 gateway of every pod: a link-local address on
// every host veth, added without DAD so it is usable the moment the veth is
// up. The same address on many veths is fine: link-local is per link.
var GatewayIPv6 = netip.MustParseAddr("fe80::1")

// LoLabel is the label of the IPv4 pool gateways SyncPools puts on the host's
// lo; it marks them as flock's (IPv4 addresses have no protocol tag).
const LoLabel = "lo:flock"

// HostIfacePrefix starts the name of every host veth flock creates.
const HostIfacePrefix = "flock"

// DefaultMTU is the veth MTU when Attachment.MTU is 0.
const DefaultMTU = 1500

// HostIfaceName is the host end's name for a container: "flock" and the
// first 8 hex digits of the container id's SHA-256. It is 13 bytes, always a
// valid Linux interface name (at most 15), and the same for the same id, so
// a retried ADD and a DEL find the veth of an earlier ADD.
func HostIfaceName(containerID string) string {
	sum := sha256.Sum256([]byte(containerID))
	return HostIfacePrefix + hex.EncodeToString(sum[:4])
}

// hostMAC is the host veth's MAC address for a container: locally
// administered, unicast, from the container id's hash (bytes after the ones
// used in the name) so it is stable across a retried ADD.
func hostMAC(containerID string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(containerID))
	mac := net.HardwareAddr(sum[4:10:10])
	mac[0] = mac[0]&^0x01 | 0x02 // unicast, locally administered
	return mac
}

// isHostIface tells whether name has the shape of HostIfaceName's result.
func isHostIface(name string) bool {
	if len(name) != len(HostIfacePrefix)+8 || name[:len(HostIfacePrefix)] != HostIfacePrefix {
		return false
	}
	for _, c := range name[len(HostIfacePrefix):] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Attachment is one pod's connection to the node, as the CNI ADD, DEL and
// CHECK describe it together with the addresses IPAM gave the pod.
type Attachment struct {
	// ContainerID is the CNI container id; it names the host veth.
	ContainerID string
	// IfName is the pod end's name; empty means "eth0".
	IfName string
	// Netns is the path of the pod's network namespace, e.g. /run/netns/x
	// or /proc/PID/ns/net.
	Netns string
	// HostIface is the host end's name, HostIfaceName(ContainerID); empty
	// means derive it.
	HostIface string
	// IPv6 and IPv4 are the pod's addresses; the zero Addr means the pod has
	// no address of that family.
	IPv6, IPv4 netip.Addr
	// Gateway4 is the IPv4 pool's gateway (PoolGateway4); required when IPv4
	// is set.
	Gateway4 netip.Addr
	// MTU of both veth ends; 0 means DefaultMTU.
	MTU int
	// Namespace, Name and UID are the pod's, recorded with the container id
	// in the host veth's alias (Owner) so that a lost allocation can be
	// rebuilt from the kernel. Optional.
	Namespace, Name, UID string
}

// owner is what the host veth's alias records of a.
func (a Attachment) owner() Owner {
	return Owner{ContainerID: a.ContainerID, IfName: a.podIface(), Netns: a.Netns, Namespace: a.Namespace, Name: a.Name, UID: a.UID}
}

// hostIface is the host end's name, derived when not given.
func (a Attachment) hostIface() string {
	if a.HostIface != "" {
		return a.HostIface
	}
	return HostIfaceName(a.ContainerID)
}

// podIface is the pod end's name.
func (a Attachment) podIface() string {
	if a.IfName != "" {
		return a.IfName
	}
	return "eth0"
}

// mtu is the MTU of both ends.
func (a Attachment) mtu() int {
	if a.MTU != 0 {
		return a.MTU
	}
	return DefaultMTU
}

// Validate reports what makes a unusable for Setup or Check.
func (a Attachment) Validate() error {
	if a.ContainerID == "" {
		return fmt.Errorf("attachment has no container id")
	}
	if err := a.validate(); err != nil {
		return fmt.Errorf("attachment %s: %w", a.ContainerID, err)
	}
	return nil
}

func (a Attachment) validate() error {
	if want := HostIfaceName(a.ContainerID); a.HostIface != "" && a.HostIface != want {
		return fmt.Errorf("host iface %q is not %q", a.HostIface, want)
	}
	if !validIfName(a.podIface()) {
		return fmt.Errorf("pod iface name %q is not a valid interface name", a.IfName)
	}
	if a.Netns == "" {
		return fmt.Errorf("no netns path")
	}
	if !a.IPv6.IsValid() && !a.IPv4.IsValid() {
		return fmt.Errorf("neither an IPv6 nor an IPv4 address")
	}
	if a.IPv6.IsValid() && (!a.IPv6.Is6() || a.IPv6.Is4In6() || !a.IPv6.IsGlobalUnicast() || a.IPv6.Zone() != "") {
		return fmt.Errorf("ipv6 address %s is not a global IPv6 unicast address", a.IPv6)
	}
	if a.IPv4.IsValid() {
		if !a.IPv4.Is4() || !a.IPv4.IsGlobalUnicast() {
			return fmt.Errorf("ipv4 address %s is not an IPv4 unicast address", a.IPv4)
		}
		if !a.Gateway4.Is4() || a.Gateway4 == a.IPv4 {
			return fmt.Errorf("ipv4 gateway %q is not an IPv4 address other than %s", a.Gateway4, a.IPv4)
		}
	}
	lo := 68 // IPv4's minimum MTU
	if a.IPv6.IsValid() {
		lo = 1280 // below it the kernel turns IPv6 off on the link
	}
	if a.MTU != 0 && (a.MTU < lo || a.MTU > 65535) {
		return fmt.Errorf("mtu %d is outside %d-65535", a.MTU, lo)
	}
	return nil
}

// validIfName mirrors the kernel's dev_valid_name.
func validIfName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, c := range s {
		if c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' {
			return false
		}
	}
	return true
}

// Result is what the CNI result needs from Setup.
type Result struct {
	HostMAC    string
	PodMAC     string
	PodIfIndex int
}

// Pools are the node's pod pools; the zero Prefix means no pool of that
// family.
type Pools struct {
	Pool6, Pool4 netip.Prefix
	// Draining are former pools that still hold pods (the NodeConfig moved
	// the pool under them): blackholed like the pools until they are empty.
	Draining []netip.Prefix
	// DrainGateways4 are the IPv4 gateways the pods in Draining still route
	// via: they stay on lo, as the current pool's gateway is.
	DrainGateways4 []netip.Addr
}

// PoolGateway4 is the gateway of an IPv4 pool: its network address + 1.
// IPAM decides it (ipam.Gateway) and never hands it to a pod.
func PoolGateway4(pool netip.Prefix) netip.Addr {
	return ipam.Gateway(pool)
}
