package main

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/annotations"
	"github.com/fritzlab/flock/pkg/kube"
	"github.com/fritzlab/flock/pkg/model"
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
		{Node: "node-2", Prefix: netip.PrefixFrom(other, 128)}, {Node: "node-2", Prefix: netip.MustParsePrefix("10.0.2.2/32")},
		{Node: "node-2", Prefix: netip.MustParsePrefix("10.244.2.0/24"), PodCIDR: true}}}}
	got, err := s.Reserved(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []annotations.Reserved{
		{Prefix: svc, What: "the cluster's Service range"},
		{Prefix: netip.MustParsePrefix("2001:db8:0:2::2/128"), What: "node node-2's address"},
		{Prefix: netip.MustParsePrefix("10.0.2.2/32"), What: "node node-2's address"},
		{Prefix: netip.MustParsePrefix("10.244.2.0/24"), What: "node node-2's pod CIDR"},
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

// Every NodeConfig's pools (from the informer), every NodePool's and every
// ServiceAddressPool's ranges are reserved; a cluster without the NodePool
// CRD (the list is NotFound) reserves the rest, and any other failure to
// list, or a NodeConfig informer not synced yet, fails closed.
func TestAnycastScopeReservesPools(t *testing.T) {
	obj := func(kind, name string, spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": v1alpha1.SchemeGroupVersion.String(), "kind": kind,
			"metadata": map[string]any{"name": name}, "spec": spec}}
	}
	newDyn := func() *dynamicfake.FakeDynamicClient {
		return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
			v1alpha1.NodeConfigGVR: "NodeConfigList", v1alpha1.NodePoolGVR: "NodePoolList",
			v1alpha1.ServiceAddressPoolGVR: "ServiceAddressPoolList"},
			obj("NodePool", "racks", map[string]any{"cidr6": "2001:db8:42::/48", "cidr4": "10.42.0.0/16"}),
			obj(v1alpha1.ServiceAddressPoolKind, "web", map[string]any{"cidrs": []any{"2001:db8:5::/112", "192.0.2.0/28"}}))
	}
	has := func(got []annotations.Reserved, p, what string) bool {
		return slices.Contains(got, annotations.Reserved{Prefix: netip.MustParsePrefix(p), What: what})
	}
	configs := fakeConfigs{synced: true, pools: []model.Pools{
		model.PoolsFromSpec("node-2", time.Time{}, "2001:db8:42:2::/64", "10.42.2.0/24"),
		model.PoolsFromSpec("node-3", time.Time{}, "2001:db8:42:3::/64", "not a prefix"),
	}}
	s := anycastScope{dyn: newDyn(), configs: configs}
	got, err := s.Reserved(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range [][2]string{
		{"2001:db8:42:2::/64", "node node-2's pod pool"}, {"10.42.2.0/24", "node node-2's pod pool"},
		{"2001:db8:42:3::/64", "node node-3's pod pool"},
		{"2001:db8:42::/48", "NodePool racks's range"}, {"10.42.0.0/16", "NodePool racks's range"},
		{"2001:db8:5::/112", "ServiceAddressPool web's range"}, {"192.0.2.0/28", "ServiceAddressPool web's range"},
	} {
		if !has(got, w[0], w[1]) {
			t.Errorf("Reserved lacks %s (%s): %+v", w[0], w[1], got)
		}
	}

	noCRD := newDyn()
	noCRD.PrependReactor("list", "nodepools", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(v1alpha1.NodePoolGVR.GroupResource(), "")
	})
	if got, err := (anycastScope{dyn: noCRD, configs: configs}).Reserved(context.Background()); err != nil || !has(got, "10.42.2.0/24", "node node-2's pod pool") {
		t.Errorf("without the NodePool CRD: %+v, %v; want the NodeConfigs' pools", got, err)
	}
	broken := newDyn()
	broken.PrependReactor("list", "nodepools", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(v1alpha1.NodePoolGVR.GroupResource(), "", errors.New("RBAC"))
	})
	if _, err := (anycastScope{dyn: broken, configs: configs}).Reserved(context.Background()); err == nil || !strings.Contains(err.Error(), "list NodePools") {
		t.Errorf("NodePools forbidden: %v, want an error", err)
	}
	if _, err := (anycastScope{dyn: newDyn(), configs: fakeConfigs{}}).Reserved(context.Background()); err == nil || !strings.Contains(err.Error(), "NodeConfig informer has not synced") {
		t.Errorf("before the NodeConfig informer synced: %v, want an error", err)
	}
}

type fakeConfigs struct {
	synced bool
	pools  []model.Pools
}

func (f fakeConfigs) HasSynced() bool         { return f.synced }
func (f fakeConfigs) AllPools() []model.Pools { return f.pools }
