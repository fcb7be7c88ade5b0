package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/annotations"
	"github.com/fritzlab/flock/pkg/kube"
	"github.com/fritzlab/flock/pkg/kube/apiclient"
	"github.com/fritzlab/flock/pkg/model"
)

// parseServiceCIDRs reads --service-cidrs: the cluster's Service ranges,
// which no pod may claim as anycast.
func parseServiceCIDRs(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for e := range strings.SplitSeq(v, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return nil, fmt.Errorf("--service-cidrs %q: entry %q is not a CIDR", v, e)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// anycastScope is what no pod may claim as anycast: the Service ranges
// (--service-cidrs), this node's own addresses, and in Kubernetes mode
// every NodeConfig's pools, every NodePool's ranges, and every Node's
// InternalIP and ExternalIP addresses and pod CIDRs; and, in Kubernetes
// mode, the namespace's anycast-cidrs annotation. It asks the API only for
// a pod that wants anycast addresses (a list of NodePools, one of
// ServiceAddressPools and one namespace per ADD, each a few objects); the
// NodeConfigs' pools and the Nodes come from informers that keep nothing
// else of them (a list of 1000 NodeConfigs per ADD would cost the API
// server and the agent megabytes).
type anycastScope struct {
	services []netip.Prefix
	client   apiclient.Interface // nil in file mode
	dyn      dynamic.Interface
	configs  nodeConfigPools // nil in file mode
	nodes    nodeAddresses   // nil in file mode
}

// nodeConfigPools are every NodeConfig's pools (kube.Source).
type nodeConfigPools interface {
	HasSynced() bool
	AllPools() []model.Pools
}

// nodeAddresses are every Node's addresses (kube.NodeAddresses).
type nodeAddresses interface {
	HasSynced() bool
	List() []kube.NodeAddress
}

// newAnycastScope is the scope of the mode: in Kubernetes mode it starts
// the Node informer, which runs until ctx ends.
func newAnycastScope(ctx context.Context, services []netip.Prefix, k *kubeParts) anycastScope {
	s := anycastScope{services: services}
	if k != nil {
		nodes := kube.NewNodeAddresses(k.client)
		go nodes.Run(ctx)
		s.client, s.dyn, s.configs, s.nodes = k.client, k.dyn, k.src, nodes
	}
	return s
}

func (s anycastScope) Reserved(ctx context.Context) ([]annotations.Reserved, error) {
	var out []annotations.Reserved
	for _, p := range s.services {
		out = append(out, annotations.Reserved{Prefix: p, What: "the cluster's Service range"})
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list the node's addresses: %w", err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || !ip.Unmap().IsGlobalUnicast() {
			continue
		}
		ip = ip.Unmap()
		out = append(out, annotations.Reserved{Prefix: netip.PrefixFrom(ip, ip.BitLen()), What: "an address of this node"})
	}
	if s.dyn != nil {
		pools, err := s.pools(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, pools...)
	}
	// After the pools, whose names are the more telling where a Node's pod
	// CIDR is its pool too.
	if s.nodes != nil {
		// Fail closed: a pod that asks before the informer listed gets no
		// anycast address rather than an unchecked one.
		if !s.nodes.HasSynced() {
			return nil, fmt.Errorf("the Nodes' addresses are not known yet (the Node informer has not synced)")
		}
		for _, a := range s.nodes.List() {
			what := "node " + a.Node + "'s address"
			if a.PodCIDR {
				what = "node " + a.Node + "'s pod CIDR"
			}
			out = append(out, annotations.Reserved{Prefix: a.Prefix, What: what})
		}
	}
	return out, nil
}

// pools are every NodeConfig's pools, every NodePool's ranges (the blocks
// not handed out yet become other nodes' pools later) and every
// ServiceAddressPool's ranges (a pod claiming one would take a LoadBalancer
// Service's traffic). A cluster without the NodePool or the
// ServiceAddressPool CRD has none of those.
func (s anycastScope) pools(ctx context.Context) ([]annotations.Reserved, error) {
	var out []annotations.Reserved
	if s.configs != nil {
		// Fail closed, as for the Nodes.
		if !s.configs.HasSynced() {
			return nil, fmt.Errorf("the NodeConfigs' pools are not known yet (the NodeConfig informer has not synced)")
		}
		for _, p := range s.configs.AllPools() {
			for _, pool := range []netip.Prefix{p.Pool6, p.Pool4} {
				if pool.IsValid() {
					out = append(out, annotations.Reserved{Prefix: pool.Masked(), What: "node " + p.Name + "'s pod pool"})
				}
			}
		}
	}
	for _, r := range []struct {
		gvr    schema.GroupVersionResource
		kind   string
		fields [][]string
		owner  string // before the object's name: "NodePool racks's range"
	}{
		{v1alpha1.NodePoolGVR, v1alpha1.NodePoolKind, [][]string{{"spec", "cidr6"}, {"spec", "cidr4"}}, "NodePool "},
		{v1alpha1.ServiceAddressPoolGVR, v1alpha1.ServiceAddressPoolKind, [][]string{{"spec", "cidrs"}}, "ServiceAddressPool "},
	} {
		list, err := s.dyn.Resource(r.gvr).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %ss: %w", r.kind, err)
		}
		for _, obj := range list.Items {
			owner := r.owner + obj.GetName()
			for _, f := range r.fields {
				for _, v := range stringOrSlice(obj.Object, f) {
					if p, err := netip.ParsePrefix(v); err == nil {
						out = append(out, annotations.Reserved{Prefix: p.Masked(), What: owner + "'s range"})
					}
				}
			}
		}
	}
	return out, nil
}

// stringOrSlice is the string or the list of strings at path in obj.
func stringOrSlice(obj map[string]any, path []string) []string {
	if v, ok, _ := unstructured.NestedString(obj, path...); ok {
		return []string{v}
	}
	v, _, _ := unstructured.NestedStringSlice(obj, path...)
	return v
}

func (s anycastScope) NamespaceCIDRs(ctx context.Context, namespace string) ([]netip.Prefix, bool, error) {
	if s.client == nil {
		return nil, false, nil
	}
	// A list by name: the agent may list and watch namespaces, not get them.
	list := &corev1.NamespaceList{}
	if err := s.client.List(ctx, apiclient.Namespaces, "", metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", namespace).String()}, list); err != nil {
		return nil, false, fmt.Errorf("read namespace: %w", err)
	}
	if len(list.Items) == 0 {
		return nil, false, fmt.Errorf("namespace not found")
	}
	v, ok := list.Items[0].Annotations[annotations.KeyNamespaceAnycastCIDRs]
	if !ok {
		return nil, false, nil
	}
	cidrs, err := annotations.ParseAnycastCIDRs(v)
	if err != nil {
		return nil, false, err
	}
	return cidrs, true, nil
}
