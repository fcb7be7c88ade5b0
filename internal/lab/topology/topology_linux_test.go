package topology

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlan(t *testing.T) {
	nodes, err := Config{Prefix: "flk-lab", Nodes: 10}.Plan()
	if err != nil {
		t.Fatal(err)
	}
	want := Node{
		Index:       10,
		Name:        "node-10",
		Netns:       "flk-lab-node-10",
		RouterIf:    "n10",
		Addr6:       netip.MustParsePrefix("2001:db8:1ab:10::2/64"),
		Addr4:       netip.MustParsePrefix("198.19.10.2/24"),
		RouterAddr6: netip.MustParsePrefix("2001:db8:1ab:10::1/64"),
		RouterAddr4: netip.MustParsePrefix("198.19.10.1/24"),
		Pool6:       netip.MustParsePrefix("2001:db8:42:10::/64"),
		Pool4:       netip.MustParsePrefix("198.18.10.0/24"),
	}
	if diff := cmp.Diff(want, nodes[9], cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("node 10 (-want +got):\n%s", diff)
	}
	// No two nodes share a link or a pool, up to the maximum.
	all, err := Config{Prefix: "p", Nodes: MaxNodes}.Plan()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Prefix]string{}
	for _, n := range all {
		for _, p := range []netip.Prefix{n.Addr6.Masked(), n.Addr4.Masked(), n.Pool6, n.Pool4} {
			if other, dup := seen[p]; dup {
				t.Errorf("%s of %s also used by %s", p, n.Name, other)
			}
			seen[p] = n.Name
		}
	}
	for _, bad := range []Config{{Prefix: "p", Nodes: 0}, {Prefix: "p", Nodes: MaxNodes + 1}, {Nodes: 1}} {
		if _, err := bad.Plan(); err == nil {
			t.Errorf("Plan(%+v) succeeded, want an error", bad)
		}
	}
}

func TestCreateRouteRemove(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	for _, tool := range []string{"ip", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (apt-get install iproute2 iputils-ping)", tool)
		}
	}
	prefix := fmt.Sprintf("flk-labt-%d", os.Getpid())
	t.Cleanup(func() { Remove(prefix) })
	topo, err := Create(Config{Prefix: prefix, Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	names, _ := ListNetns(prefix + "-")
	wantNames := []string{prefix + "-node-1", prefix + "-node-2", prefix + "-node-3", prefix + "-router"}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
	n1, n2 := topo.Nodes[0], topo.Nodes[1]

	// Each node reaches the router, and through it another node's link.
	for _, dst := range []netip.Prefix{n1.RouterAddr6, n1.RouterAddr4, n2.Addr6, n2.Addr4} {
		ping(t, n1.Netns, dst.Addr(), true)
	}

	// Pool addresses on node-2's lo become reachable from node-1 only with
	// the router's static routes to node-2's pools.
	pool6 := n2.Pool6.Addr().Next()
	pool4 := n2.Pool4.Addr().Next()
	run(t, "ip", "netns", "exec", n2.Netns, "ip", "addr", "add", pool6.String()+"/128", "dev", "lo")
	run(t, "ip", "netns", "exec", n2.Netns, "ip", "addr", "add", pool4.String()+"/32", "dev", "lo")
	ping(t, n1.Netns, pool6, false)
	pools := map[string][]netip.Prefix{}
	for _, n := range topo.Nodes {
		pools[n.Name] = []netip.Prefix{n.Pool6, n.Pool4}
	}
	if err := topo.SetStaticRoutes(pools); err != nil {
		t.Fatal(err)
	}
	ping(t, n1.Netns, pool6, true)
	ping(t, n1.Netns, pool4, true)
	got, err := topo.StaticRoutes()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 || !slices.Contains(got, "2001:db8:42:2::/64 via 2001:db8:1ab:2::2") ||
		!slices.Contains(got, "198.18.2.0/24 via 198.19.2.2") {
		t.Errorf("static routes = %q, want both pools of 3 nodes via their links", got)
	}
	out := run(t, "ip", "netns", "exec", topo.RouterNetns(), "ip", "-6", "route", "show", "proto", "84")
	if !strings.Contains(out, "2001:db8:42:2::/64 via 2001:db8:1ab:2::2 dev n2") {
		t.Errorf("router routes:\n%s", out)
	}

	// Setting a smaller set removes the rest; setting it again changes nothing.
	only1 := map[string][]netip.Prefix{n1.Name: {n1.Pool6, n1.Pool4}}
	for range 2 {
		if err := topo.SetStaticRoutes(only1); err != nil {
			t.Fatal(err)
		}
	}
	got, _ = topo.StaticRoutes()
	slices.Sort(got)
	if diff := cmp.Diff([]string{"198.18.1.0/24 via 198.19.1.2", "2001:db8:42:1::/64 via 2001:db8:1ab:1::2"}, got); diff != "" {
		t.Errorf("static routes after shrinking (-want +got):\n%s", diff)
	}
	ping(t, n1.Netns, pool6, false)
	if err := topo.SetStaticRoutes(map[string][]netip.Prefix{"node-9": {n1.Pool6}}); err == nil {
		t.Error("SetStaticRoutes accepted an unknown node")
	}

	if err := topo.Destroy(); err != nil {
		t.Fatal(err)
	}
	if names, _ := ListNetns(prefix + "-"); len(names) != 0 {
		t.Errorf("namespaces left after Destroy: %v", names)
	}
	// Nothing was ever made in the caller's namespace.
	if out, _ := exec.Command("ip", "link", "show", "dev", n1.RouterIf).CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Errorf("link %s in the root namespace:\n%s", n1.RouterIf, out)
	}
}

func ping(t *testing.T, netns string, dst netip.Addr, want bool) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", netns, "ping", "-c1", "-W1", dst.String()).CombinedOutput()
	if (err == nil) != want {
		t.Errorf("ping %s from %s: reachable = %v, want %v\n%s", dst, netns, err == nil, want, out)
	}
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
