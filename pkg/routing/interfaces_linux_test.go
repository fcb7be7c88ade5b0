package routing

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fritzlab/flock/internal/testns"
)

// Interfaces reads a fresh namespace set up as a node: uplink addresses
// count; lo (with a pool gateway), a pod veth and link-local addresses do
// not. (Temporary addresses cannot be added from userspace.)
func TestInterfaces(t *testing.T) {
	name := testns.New(t, "routing")
	in := func(args ...string) { t.Helper(); testns.Run(t, append([]string{"ip", "-n", name}, args...)...) }
	in("link", "set", "lo", "up")
	in("addr", "add", "10.42.1.1/32", "dev", "lo", "label", "lo:flock")
	// No dummy driver in every kernel: plain veths play the uplinks.
	in("link", "add", "uplink", "type", "veth", "peer", "name", "router")
	in("link", "set", "uplink", "up")
	in("addr", "add", "198.19.1.2/24", "dev", "uplink")
	in("addr", "add", "2001:db8:1ab:1::2/64", "dev", "uplink", "nodad")
	in("addr", "add", "fe80::2/64", "dev", "uplink", "nodad")
	in("link", "add", "second", "type", "veth", "peer", "name", "switch")
	in("addr", "add", "192.0.2.5/28", "dev", "second")
	in("link", "add", "flock0a1b2c3d", "type", "veth", "peer", "name", "other")
	in("addr", "add", "198.51.100.1/32", "dev", "flock0a1b2c3d")

	ifs, err := NewInterfacesAt(testns.Path(name))
	if err != nil {
		t.Fatal(err)
	}
	defer ifs.Close()
	got, err := ifs.Addresses()
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{prefix("192.0.2.5/28"), prefix("198.19.1.2/24"), prefix("2001:db8:1ab:1::2/64")}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("Addresses (-want +got):\n%s", diff)
	}
}

// DefaultGateways reads the default route of each family from a fresh
// namespace; of two IPv4 default routes the lower metric wins.
func TestDefaultGateways(t *testing.T) {
	name := testns.New(t, "gw")
	in := func(args ...string) { t.Helper(); testns.Run(t, append([]string{"ip", "-n", name}, args...)...) }
	in("link", "add", "uplink", "type", "veth", "peer", "name", "router")
	in("link", "set", "uplink", "up")
	in("link", "set", "router", "up")
	in("addr", "add", "198.19.1.2/24", "dev", "uplink")
	in("addr", "add", "198.19.2.2/24", "dev", "router")
	in("addr", "add", "2001:db8:1ab:1::2/64", "dev", "uplink", "nodad")
	in("route", "add", "default", "via", "198.19.2.1", "metric", "200")
	in("route", "add", "default", "via", "198.19.1.1", "metric", "100")
	in("-6", "route", "add", "default", "via", "2001:db8:1ab:1::1")
	ifs, err := NewInterfacesAt(testns.Path(name))
	if err != nil {
		t.Fatal(err)
	}
	defer ifs.Close()
	got, err := ifs.DefaultGateways()
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("2001:db8:1ab:1::1"), netip.MustParseAddr("198.19.1.1")}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
		t.Errorf("DefaultGateways (-want +got):\n%s", diff)
	}
}
