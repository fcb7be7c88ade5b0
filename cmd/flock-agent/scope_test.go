package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/annotations"
	"github.com/fritzlab/flock/pkg/kube"
)

type fakeNodes struct {
	synced bool
	addrs  []kube.NodeAddress
}

func (f fakeNodes) HasSynced() bool          { return f.synced }
func (f fakeNodes) List() []kube.NodeAddress { return f.addrs }

// Every Node's addresses are reserved from anycast, next to the Service
// ranges; before the Node informer has listed, the scope fails closed.
func TestAnycastScopeReservesNodeAddresses(t *testing.T) {
	svc := netip.MustParsePrefix("2001:db8:5e5::/112")
	other := netip.MustParseAddr("2001:db8:0:2::2")
	s := anycastScope{services: []netip.Prefix{svc}, nodes: fakeNodes{synced: true, addrs: []kube.NodeAddress{
		{Node: "node-2", Addr: other}, {Node: "node-2", Addr: netip.MustParseAddr("10.0.2.2")}}}}
	got, err := s.Reserved(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []annotations.Reserved{
		{Prefix: svc, What: "the cluster's Service range"},
		{Prefix: netip.MustParsePrefix("2001:db8:0:2::2/128"), What: "node node-2's address"},
		{Prefix: netip.MustParsePrefix("10.0.2.2/32"), What: "node node-2's address"},
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Errorf("Reserved lacks %+v: %+v", w, got)
		}
	}
	// The decision the agent makes with it: node-2's address is refused
	// even inside the allowlist, with a warning that names the node.
	lim := annotations.AnycastLimits{Allowed: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}, Reserved: got}
	addrs, warns := annotations.Anycast(map[string]string{annotations.KeyAnycast: other.String()}, netip.MustParseAddr("2001:db8:1::5"), netip.Addr{}, lim)
	if len(addrs) != 0 || len(warns) != 1 || !strings.Contains(warns[0].Reason, "node node-2's address 2001:db8:0:2::2/128") {
		t.Errorf("anycast %s: granted %v, warnings %q; want it refused as node-2's address", other, addrs, warns)
	}

	s.nodes = fakeNodes{}
	if _, err := s.Reserved(context.Background()); err == nil || !strings.Contains(err.Error(), "Node informer has not synced") {
		t.Errorf("before the Node informer synced: %v, want an error", err)
	}
}
