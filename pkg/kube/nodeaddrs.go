package kube

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/pkg/kube/apiclient"
)

// NodeAddresses serves every Node's IP addresses (InternalIP and
// ExternalIP) and pod CIDRs (spec.podCIDRs), which no pod may claim as
// anycast: a pod announcing another node's address would pull that node's
// traffic (kubelet, BGP, SSH) to itself at the router, and one inside a
// node's pod CIDR that node's pods (a NodePool with ipv4FromPodCIDRs
// makes them the node's pool). Its informer keeps nothing of a Node but
// its name, those addresses and CIDRs: about 1 KiB a node with the
// informer's own bookkeeping (5 MiB at 5,000 nodes of two addresses and
// two pod CIDRs each, measured on the heap).
type NodeAddresses struct {
	inf cache.SharedIndexInformer
}

// NewNodeAddresses builds the informer on every Node; nothing runs until
// Run.
func NewNodeAddresses(client apiclient.Interface) *NodeAddresses {
	inf := cache.NewSharedIndexInformer(client.ListWatch(apiclient.Nodes, "", nil), &corev1.Node{}, 0, cache.Indexers{})
	// The error is only for an informer that already runs.
	_ = inf.SetTransform(StripNode)
	return &NodeAddresses{inf: inf}
}

// Run runs the informer until ctx ends.
func (n *NodeAddresses) Run(ctx context.Context) { n.inf.RunWithContext(ctx) }

// HasSynced reports whether the informer has listed once.
func (n *NodeAddresses) HasSynced() bool { return n.inf.HasSynced() }

// NodeAddress is one address of a Node, or one of its pod CIDRs.
type NodeAddress struct {
	Node string
	// Prefix is an address (a /128 or /32) or a pod CIDR.
	Prefix netip.Prefix
	// PodCIDR marks a pod CIDR.
	PodCIDR bool
}

// List returns every Node's addresses and pod CIDRs, sorted by node, then
// addresses before pod CIDRs, then by prefix.
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
		if a.PodCIDR != b.PodCIDR {
			return cmp.Compare(boolInt(a.PodCIDR), boolInt(b.PodCIDR))
		}
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits())
	})
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// addressesOf reads a Node's IP addresses and pod CIDRs; a hostname or DNS
// name, and an address or CIDR that does not parse, are left out.
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
		ip = ip.Unmap().WithZone("")
		out = append(out, NodeAddress{Node: node.Name, Prefix: netip.PrefixFrom(ip, ip.BitLen())})
	}
	for _, c := range node.Spec.PodCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			continue
		}
		out = append(out, NodeAddress{Node: node.Name, Prefix: p.Masked(), PodCIDR: true})
	}
	return out
}

// StripNode is the Node informer's transform: it keeps the name, the
// resource version, the IP addresses and the pod CIDRs, and drops the rest
// (labels, images, conditions, managed fields), which is nearly all of a
// Node.
func StripNode(obj any) (any, error) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil // a tombstone holds an already stripped Node
	}
	out := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: node.Name, ResourceVersion: node.ResourceVersion},
		Spec:       corev1.NodeSpec{PodCIDRs: node.Spec.PodCIDRs},
	}
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP {
			out.Status.Addresses = append(out.Status.Addresses, a)
		}
	}
	return out, nil
}
