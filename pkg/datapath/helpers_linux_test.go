package datapath

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/fritzlab/flock/internal/testns"
)

// The kernel tests play the node and its pods in fresh network namespaces,
// made by testns so that concurrent runs never meet, and drive the node's
// namespace through NewAt. Assertions go through iproute2 and ping, not
// through the code under test.

var (
	testPool6 = netip.MustParsePrefix("2001:db8:42:1::/64")
	testPool4 = netip.MustParsePrefix("10.42.1.0/24")
	testGw4   = PoolGateway4(testPool4)
)

// requireRoot skips kernel tests for ordinary users and fails when root
// lacks the tools, which CI must install.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create network namespaces (CI runs it as root)")
	}
	for _, tool := range []string{"ip", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("kernel test needs %s: apt-get install -y iproute2 iputils-ping", tool)
		}
	}
}

func run(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// testNode is a node namespace with a Kernel bound to it.
type testNode struct {
	ns string
	k  *Kernel
}

// newNode makes a node namespace, initialised and with the test pools
// synced, as the agent leaves it at start.
func newNode(t testing.TB) *testNode {
	t.Helper()
	n := newBareNode(t)
	if err := n.k.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if err := n.k.SyncPools(Pools{Pool6: testPool6, Pool4: testPool4}); err != nil {
		t.Fatalf("SyncPools: %v", err)
	}
	return n
}

// newBareNode makes a node namespace and a Kernel, nothing else.
func newBareNode(t testing.TB) *testNode {
	t.Helper()
	ns := testns.New(t, "dp")
	k, err := NewAt(testns.Path(ns))
	if err != nil {
		t.Fatalf("NewAt: %v", err)
	}
	t.Cleanup(k.Close)
	return &testNode{ns: ns, k: k}
}

// attachment makes a pod namespace and the Attachment for it; host is the
// last byte of the pod's addresses, 0 for a family the pod lacks.
func attachment(t testing.TB, id string, host6, host4 byte) Attachment {
	t.Helper()
	a := Attachment{ContainerID: id, IfName: "eth0", Netns: testns.Path(testns.New(t, "dp"))}
	if host6 != 0 {
		b := testPool6.Addr().As16()
		b[15] = host6
		a.IPv6 = netip.AddrFrom16(b)
	}
	if host4 != 0 {
		b := testPool4.Addr().As4()
		b[3] = host4
		a.IPv4, a.Gateway4 = netip.AddrFrom4(b), testGw4
	}
	return a
}

// podNS is the name of an Attachment's namespace.
func podNS(a Attachment) string { return strings.TrimPrefix(a.Netns, "/run/netns/") }

func (n *testNode) setup(t testing.TB, a Attachment) Result {
	t.Helper()
	res, err := n.k.Setup(a)
	if err != nil {
		t.Fatalf("Setup(%s): %v", a.ContainerID, err)
	}
	return res
}

// ping sends one echo request from namespace ns.
func ping(ns, addr string) error {
	_, err := run("ip", "netns", "exec", ns, "ping", "-c1", "-W2", addr)
	return err
}

func mustPing(t testing.TB, ns, addr string) {
	t.Helper()
	if err := ping(ns, addr); err != nil {
		t.Errorf("ping %s from %s: %v", addr, ns, err)
	}
}

// podRoutes lists the node's flock routes other than the pool blackholes.
func (n *testNode) podRoutes(t testing.TB) string {
	t.Helper()
	var left []string
	for _, fam := range []string{"-4", "-6"} {
		for _, l := range strings.Split(testns.Run(t, "ip", fam, "-n", n.ns, "route", "show", "proto", "83"), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "blackhole") {
				left = append(left, l)
			}
		}
	}
	return strings.Join(left, "\n")
}

// hasLink tells whether namespace ns has a link of that name.
func hasLink(ns, name string) bool {
	_, err := run("ip", "-n", ns, "link", "show", "dev", name)
	return err == nil
}
