package netpol

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fritzlab/flock/internal/testns"
	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/policy"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create a network namespace (CI runs it as root)")
	}
	for _, tool := range []string{"ip", "nft", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("kernel test needs %s: apt-get install -y iproute2 nftables util-linux", tool)
		}
	}
}

// TestKernelController runs the controller against real nftables in a
// fresh network namespace: a sync loads the table, a pod ADD puts the new
// pod into the dispatch map before returning, the next sync makes the
// table what a fresh load of the whole cluster gives, and a deleted table
// comes back at the drift check.
func TestKernelController(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	nft := policy.NFT{Netns: testns.Path(testns.New(t, "netpol"))}
	list := func(what ...string) string {
		t.Helper()
		out, err := nft.Run(ctx, nil, append([]string{"list"}, what...)...)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}

	cl := testCluster()
	cl.in.Pods = append(cl.in.Pods, policy.Pod{Namespace: "x", Name: "c", UID: "u-c", Node: node, Labels: map[string]string{"role": "server"}})
	cl.synced.Store(true)
	lo := &fakeLocals{}
	lo.add(record("x", "a", "u-a", "flock0000000a", "2001:db8:1::a"))
	rules := policy.NewApplier(nft)
	c := New(node, cl, lo, rules, discard)

	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if m := list("map", "inet", "flock", "ingress_by_iface"); !strings.Contains(m, `"flock0000000a"`) || strings.Contains(m, "flock0000000c") {
		t.Fatalf("ingress map after the first sync:\n%s", m)
	}

	ip := netip.MustParseAddr("2001:db8:1::c")
	lo.add(record("x", "c", "u-c", "flock0000000c", ip.String()))
	start := time.Now()
	if err := c.PodAdded(ctx, &model.Pod{Namespace: "x", Name: "c", UID: "u-c"}, "flock0000000c", []netip.Addr{ip}); err != nil {
		t.Fatal(err)
	}
	t.Logf("PodAdded took %s", time.Since(start))
	if m := list("map", "inet", "flock", "ingress_by_iface"); !strings.Contains(m, `"flock0000000c" comment "x/c" : jump ingress_`) {
		t.Fatalf("ingress map after PodAdded lacks x/c:\n%s", m)
	}

	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := list("table", "inet", "flock")
	fresh := policy.NewApplier(nft)
	if _, err := fresh.Apply(ctx, policy.Translate(c.input(nil, false))); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(list("table", "inet", "flock"), got); d != "" {
		t.Errorf("table after PodAdded and a sync differs from a fresh load (-fresh +got):\n%s", d)
	}

	// Drift: the worker's resync tick reloads a deleted table.
	if _, err := nft.Run(ctx, nil, "delete", "table", "inet", "flock"); err != nil {
		t.Fatal(err)
	}
	c.Resync = 50 * time.Millisecond
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := nft.Run(ctx, nil, "list", "table", "inet", "flock")
		if err == nil && string(out) == got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted table did not come back: %s %v", out, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
