package kube

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// NodeAddresses serves every Node's IP addresses (InternalIP and
// ExternalIP), which no pod may claim as anycast: a pod announcing another
// node's address would pull that node's traffic (kubelet, BGP, SSH) to
// itself at the router. Its informer keeps nothing of a Node but its name
// and those addresses, so a cluster of 5,000 nodes costs the agent about a
// megabyte.
type NodeAddresses struct {
	inf cache.SharedIndexInformer
}

// NewNodeAddresses builds the informer on every Node; nothing runs until
// Run.
func NewNodeAddresses(client kubernetes.Interface) *NodeAddresses {
	inf := coreinformers.NewNodeInformer(client, 0, cache.Indexers{})
	// The error is only for an informer that already runs.
	_ = inf.SetTransform(StripNode)
	return &NodeAddresses{inf: inf}
}

// Run runs the informer until ctx ends.
func (n *NodeAddresses) Run(ctx context.Context) { n.inf.RunWithContext(ctx) }

// HasSynced reports whether the informer has listed once.
func (n *NodeAddresses) HasSynced() bool { return n.inf.HasSynced() }

// NodeAddress is one address of a Node.
type NodeAddress struct {
	Node string
	Addr netip.Addr
}

// List returns every Node's addresses, sorted by node and address.
func (n *NodeAddresses) List() []NodeAddress {
	var out []NodeAddress
	for _, obj := range n.inf.GetStore().List() {
		node, ok := obj.(*corev1.Node)
		if !ok {
			continue
		}
		out = append(out, addressesOf(node)...)
	}
	slices.SortFunc(out, func(a, b NodeAddress) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return a.Addr.Compare(b.Addr)
	})
	return out
}

// addressesOf reads a Node's IP addresses; a hostname or DNS name, and an
// address that does not parse, are left out.
func addressesOf(node *corev1.Node) []NodeAddress {
	var out []NodeAddress
	for _, a := range node.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			continue
		}
		out = append(out, NodeAddress{Node: node.Name, Addr: ip.Unmap().WithZone("")})
	}
	return out
}

// StripNode is the Node informer's transform: it keeps the name, the
// resource version and the IP addresses, and drops the rest (labels,
// images, conditions, managed fields), which is nearly all of a Node.
func StripNode(obj any) (any, error) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil // a tombstone holds an already stripped Node
	}
	out := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node.Name, ResourceVersion: node.ResourceVersion}}
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP {
			out.Status.Addresses = append(out.Status.Addresses, a)
		}
	}
	return out, nil
}
