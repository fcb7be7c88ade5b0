package kube

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/pkg/kube/apiclient/apiclientfake"
)

func fullNode(name string, addrs ...corev1.NodeAddress) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "7", Labels: map[string]string{"rack": "a"},
			Annotations: map[string]string{"big": "x"}},
		Spec: corev1.NodeSpec{PodCIDRs: []string{"10.0.0.0/24"}},
		Status: corev1.NodeStatus{
			Addresses:  addrs,
			Images:     []corev1.ContainerImage{{Names: []string{"registry/image:tag"}, SizeBytes: 1 << 20}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

// StripNode keeps the name, the resource version and the IP addresses only.
func TestStripNode(t *testing.T) {
	n := fullNode("node-2",
		corev1.NodeAddress{Type: corev1.NodeHostName, Address: "node-2"},
		corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "2001:db8::2"},
		corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.2"},
		corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: "node-2.example"})
	got, err := StripNode(n)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-2", ResourceVersion: "7"},
		Spec:       corev1.NodeSpec{PodCIDRs: []string{"10.0.0.0/24"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "2001:db8::2"}, {Type: corev1.NodeExternalIP, Address: "203.0.113.2"}}},
	}
	g := got.(*corev1.Node)
	if g.Name != want.Name || g.ResourceVersion != want.ResourceVersion || g.Labels != nil || g.Annotations != nil ||
		!slices.Equal(g.Spec.PodCIDRs, want.Spec.PodCIDRs) || len(g.Status.Images) != 0 || len(g.Status.Conditions) != 0 ||
		!slices.Equal(g.Status.Addresses, want.Status.Addresses) {
		t.Errorf("StripNode = %+v, want %+v", g, want)
	}
	tomb := cache.DeletedFinalStateUnknown{Key: "node-2", Obj: want}
	if got, _ := StripNode(tomb); got != any(tomb) {
		t.Errorf("a tombstone is changed: %v", got)
	}
}

// NodeAddresses lists every Node's IP addresses and pod CIDRs from its
// informer and follows changes; a hostname or an unparsable address is
// left out.
func TestNodeAddresses(t *testing.T) {
	client := apiclientfake.New(
		fullNode("node-1", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.1"},
			corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "2001:db8::1"}),
		fullNode("node-2", corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "::ffff:203.0.113.2"},
			corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "not-an-ip"},
			corev1.NodeAddress{Type: corev1.NodeHostName, Address: "node-2"}),
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := NewNodeAddresses(client)
	go n.Run(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), n.HasSynced) {
		t.Fatal("never synced")
	}
	host := func(s string) netip.Prefix { a := netip.MustParseAddr(s); return netip.PrefixFrom(a, a.BitLen()) }
	want := []NodeAddress{
		{"node-1", host("10.0.0.1"), false}, {"node-1", host("2001:db8::1"), false},
		{"node-1", netip.MustParsePrefix("10.0.0.0/24"), true},
		{"node-2", host("203.0.113.2"), false}, {"node-2", netip.MustParsePrefix("10.0.0.0/24"), true},
	}
	if got := n.List(); !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	if err := client.CoreV1().Nodes().Delete(ctx, "node-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got := n.List()
		if slices.Equal(got, want[3:]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after deleting node-1: List = %v, want %v", got, want[3:])
		}
	}
}
