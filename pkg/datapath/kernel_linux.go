package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/fritzlab/flock/pkg/rtnl"
)

// Kernel applies the data path through netlink. It is bound to one network
// namespace, the node's (the agent's own in production), and reaches pod
// namespaces through netlink handles bound to them, never by moving one of
// the agent's threads (see containernetworking/plugins pkg/ns/README.md).
// Its methods are safe for concurrent use on different pods.
type Kernel struct {
	h *netlink.Handle
	// ns is the namespace the Kernel is bound to when it is not the
	// caller's (NewAt); None otherwise. Sysctls are per namespace and
	// /proc/sys shows the calling thread's, so writing them for ns takes a
	// thread of its own (inNetns).
	ns  netns.NsHandle
	log *slog.Logger
	// procSys is where the sysctls are (/proc/sys; see SetProcSys).
	procSys string
}

// DefaultProcSys is where a Kernel reads and writes sysctls by default.
const DefaultProcSys = "/proc/sys"

// SetProcSys makes the Kernel read and write sysctls under dir instead of
// /proc/sys: an unprivileged container's /proc/sys is read-only, so the
// DaemonSet mounts the host's /proc/sys/net at /host/proc/sys/net and the
// agent runs with --proc-sys=/host/proc/sys. Every sysctl flock sets is
// under net/, and /proc/sys/net shows the reading thread's namespace
// wherever it is mounted.
func (k *Kernel) SetProcSys(dir string) { k.procSys = dir }

// New binds a Kernel to the caller's network namespace.
func New() (*Kernel, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	return &Kernel{h: h, ns: netns.None(), log: slog.Default(), procSys: DefaultProcSys}, nil
}

// NewAt binds a Kernel to the network namespace at path (e.g.
// /run/netns/x), which the caller's threads need not be in; tests use it to
// play the node in a fresh namespace.
func NewAt(path string) (*Kernel, error) {
	ns, h, err := rtnl.OpenAt(path)
	if err != nil {
		return nil, err
	}
	return &Kernel{h: h, ns: ns, log: slog.Default(), procSys: DefaultProcSys}, nil
}

// forCall returns a copy of k with a netlink socket of its own, and the
// function that closes it. netlink.Handle serialises requests per socket and
// deleting a veth takes the kernel tens of milliseconds, so pods sharing one
// socket would queue behind each other's DEL; a socket costs microseconds.
func (k *Kernel) forCall() (*Kernel, func(), error) {
	var (
		h   *netlink.Handle
		err error
	)
	if k.ns.IsOpen() {
		h, err = netlink.NewHandleAt(k.ns, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open netlink socket: %w", err)
	}
	c := *k
	c.h = h
	return &c, h.Close, nil
}

// Close releases the netlink socket and the namespace.
func (k *Kernel) Close() {
	k.h.Close()
	if k.ns.IsOpen() {
		k.ns.Close()
	}
}

// setSysctl writes a sysctl of the Kernel's namespace, key in /proc/sys
// path form (net/ipv4/conf/IFACE/proxy_arp: interface names may hold dots),
// and leaves it alone when it already has the value.
func (k *Kernel) setSysctl(key, value string) error {
	err := k.inNetns(func() error {
		path := k.procSys + "/" + key
		if cur, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(cur)) == value {
			return nil
		}
		return os.WriteFile(path, []byte(value), 0o644)
	})
	if err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// Sysctl reads a sysctl of the node (key in /proc/sys path form), for
// operators (flockctl doctor).
func (k *Kernel) Sysctl(key string) (string, error) { return k.sysctl(key) }

// sysctl reads a sysctl of the Kernel's namespace.
func (k *Kernel) sysctl(key string) (string, error) {
	var v []byte
	err := k.inNetns(func() (err error) {
		v, err = os.ReadFile(k.procSys + "/" + key)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(v)), nil
}

// inNetns runs f in the Kernel's namespace. For a Kernel bound elsewhere
// (NewAt) it uses a fresh thread that it moves there and never unlocks:
// the runtime then ends the thread with the goroutine, so no goroutine can
// ever run in a namespace it did not ask for.
func (k *Kernel) inNetns(f func() error) error {
	if !k.ns.IsOpen() {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(k.ns); err != nil {
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// notFound tells whether err says the link, address, route or neighbour in
// question does not exist.
func notFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) ||
		errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EADDRNOTAVAIL)
}

// ipNet turns a prefix into netlink's form.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// prefixOf turns netlink's form into a prefix; nil is the default route of
// family.
func prefixOf(n *net.IPNet, family int) netip.Prefix {
	if n == nil {
		if family == unix.AF_INET {
			return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		}
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

// addrOf turns a net.IP into an Addr, IPv4 unmapped.
func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// family is the netlink family of an address.
func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}
