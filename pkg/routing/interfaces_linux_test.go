package routing

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Interfaces reads a fresh namespace set up as a node: uplink addresses
// count; lo (with a pool gateway), a pod veth and link-local addresses do
// not. (Temporary addresses cannot be added from userspace.)
func TestInterfaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create network namespaces (CI runs it as root)")
	}
	name := fmt.Sprintf("flk-routing-%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	in := func(args ...string) { t.Helper(); run(append([]string{"ip", "-n", name}, args...)...) }
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

	ifs, err := NewInterfacesAt("/run/netns/" + name)
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
