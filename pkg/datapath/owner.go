package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Owner is what a host veth's alias (`ip link show` prints it after
// "alias") records of the attachment that made it: enough for an agent
// whose allocation file was lost or damaged to rebuild the allocation from
// the kernel. The veth's name is a hash of the container id and cannot be
// reversed; its alias can.
type Owner struct {
	ContainerID string
	IfName      string
	Netns       string
	Namespace   string
	Name        string
	UID         string
}

// aliasPrefix starts every alias flock writes; v1 is the encoding below.
const aliasPrefix = "flock:v1 "

// maxAlias is the longest alias the kernel keeps (IFALIASZ 256 with the
// terminating NUL).
const maxAlias = 255

// Alias encodes o as a veth alias: "flock:v1 " and URL query form, so that
// any byte of a field round-trips. When it does not fit in maxAlias, the
// UID, then the pod's name and namespace, then the netns path are left
// out: the container id alone still proves who owns the veth. ok is false
// when not even that fits (no alias is set then).
func (o Owner) Alias() (alias string, ok bool) {
	fields := []struct{ k, v string }{
		{"c", o.ContainerID}, {"i", o.IfName}, {"n", o.Netns},
		{"ns", o.Namespace}, {"p", o.Name}, {"u", o.UID},
	}
	// Drop from the end: u, p+ns together, n.
	for _, keep := range []int{6, 5, 3, 2} {
		v := url.Values{}
		for _, f := range fields[:keep] {
			if f.v != "" {
				v.Set(f.k, f.v)
			}
		}
		if s := aliasPrefix + v.Encode(); len(s) <= maxAlias {
			return s, o.ContainerID != ""
		}
	}
	return "", false
}

// ParseAlias decodes an alias Alias wrote. An alias flock did not write
// (empty, or set by an operator) is an error, as is one without a
// container id or with a pod interface name Linux would not take.
func ParseAlias(s string) (Owner, error) {
	rest, ok := strings.CutPrefix(s, aliasPrefix)
	if !ok {
		return Owner{}, fmt.Errorf("veth alias %q: not written by flock (no %q prefix)", s, strings.TrimSpace(aliasPrefix))
	}
	v, err := url.ParseQuery(rest)
	if err != nil {
		return Owner{}, fmt.Errorf("veth alias %q: %w", s, err)
	}
	for k, vals := range v {
		switch k {
		case "c", "i", "n", "ns", "p", "u":
		default:
			return Owner{}, fmt.Errorf("veth alias %q: unknown field %q", s, k)
		}
		if len(vals) != 1 {
			return Owner{}, fmt.Errorf("veth alias %q: field %q given %d times", s, k, len(vals))
		}
	}
	o := Owner{ContainerID: v.Get("c"), IfName: v.Get("i"), Netns: v.Get("n"),
		Namespace: v.Get("ns"), Name: v.Get("p"), UID: v.Get("u")}
	if o.ContainerID == "" {
		return Owner{}, fmt.Errorf("veth alias %q: no container id (field c)", s)
	}
	if o.IfName != "" && !validIfName(o.IfName) {
		return Owner{}, fmt.Errorf("veth alias %q: pod interface %q is not a valid interface name", s, o.IfName)
	}
	if (o.Namespace == "") != (o.Name == "") {
		return Owner{}, fmt.Errorf("veth alias %q: pod namespace %q and name %q go together", s, o.Namespace, o.Name)
	}
	return o, nil
}

// Live is one flock host veth as the kernel has it now, with what it
// carries: the state an agent rebuilds lost allocations from.
type Live struct {
	// HostIface is the veth's name.
	HostIface string
	// Owner is what its alias says; OwnerErr why there is none (no alias,
	// one flock did not write, or one naming a container whose hash is
	// not HostIface).
	Owner    Owner
	OwnerErr error
	MTU      int
	// Addrs are the pod addresses routed via the veth (host routes with
	// RouteProtocol), and those on the pod end when its netns could be read.
	Addrs []netip.Addr
	// Gateway4 is the pod's IPv4 default gateway and Anycast the global
	// addresses on the pod's lo; both only when the netns could be read.
	Gateway4 netip.Addr
	Anycast  []netip.Addr
}

// errNoAlias says a veth has no alias at all (made by an agent older
// than the alias).
var errNoAlias = errors.New("the veth has no alias")

// ownerOf decodes a veth's alias and checks that it names a container
// whose veth has this name.
func ownerOf(name, alias string) (Owner, error) {
	if alias == "" {
		return Owner{}, errNoAlias
	}
	o, err := ParseAlias(alias)
	if err != nil {
		return Owner{}, err
	}
	if want := HostIfaceName(o.ContainerID); want != name {
		return Owner{}, fmt.Errorf("veth %s: alias names container %s, whose veth is %s", name, o.ContainerID, want)
	}
	return o, nil
}
