package annotations

import (
	"fmt"
	"net/netip"

	"github.com/fritzlab/flock/pkg/iid"
	"github.com/fritzlab/flock/pkg/model"
)

// Intent is what a pod should get on a node, resolved from its annotations
// and the node's configuration; IPAM turns it into addresses.
type Intent struct {
	// Families are the address families the pod gets.
	Families model.Families
	// Ranges6 and Ranges4 are the candidate ranges inside the node's pools,
	// in order of preference; IPAM takes the first with a free address.
	// Nil for a family the pod does not get.
	Ranges6, Ranges4 []netip.Prefix
	// Algo is the IPv6 interface identifier algorithm; empty when the pod
	// gets no IPv6.
	Algo iid.Algo
}

// Resolve computes a pod's Intent on a node. Warnings report annotation
// values that were ignored, and are returned even with an error so that the
// operator learns about every problem at once. The error names what to
// change: a pod that gets no family, wants a family the node has no pool
// for, or restricts a family to ranges none of which lie in the pool.
//
// Annotations of a family the pod does not get, and ip-algo of a pod without
// IPv6, are not parsed: they cannot matter, and warning about them would be
// noise on every IPv4-only pod of a node that sets a default algorithm.
func Resolve(pod *model.Pod, node *model.Node) (Intent, []Warning, error) {
	if pod == nil || node == nil {
		return Intent{}, nil, fmt.Errorf("resolve annotations: pod or node is nil")
	}
	v6 := family(pod.Annotations, KeyIPv6, node.Defaults.IPv6, "ipv6")
	v4 := family(pod.Annotations, KeyIPv4, node.Defaults.IPv4, "ipv4")
	fams, ws, err := families(v6, v4)
	if err != nil {
		return Intent{}, ws, fmt.Errorf("pod %s on node %s: %w", pod.Key(), node.Name, err)
	}
	in := Intent{Families: fams}
	if fams.IPv6 {
		if !node.Pool6.IsValid() {
			return Intent{}, ws, noPool(pod, node, "IPv6", KeyIPv6, v6.source, "cidr6")
		}
		r, w, err := ranges(pod, node.Pool6, KeyCIDR6, true)
		ws = append(ws, w...)
		if err != nil {
			return Intent{}, ws, err
		}
		in.Ranges6 = r
		algo, w := IPAlgo(pod.Annotations, node.Annotations)
		ws = append(ws, w...)
		in.Algo = algo
	}
	if fams.IPv4 {
		if !node.Pool4.IsValid() {
			return Intent{}, ws, noPool(pod, node, "IPv4", KeyIPv4, v4.source, "cidr4")
		}
		r, w, err := ranges(pod, node.Pool4, KeyCIDR4, false)
		ws = append(ws, w...)
		if err != nil {
			return Intent{}, ws, err
		}
		in.Ranges4 = r
	}
	return in, ws, nil
}

// ranges parses one family's cidr annotation and narrows it against the
// pool, failing when the pod named ranges and none of them is usable: the
// operator asked for a specific part of the pool, and handing out an address
// elsewhere would break whatever relies on that (a firewall rule, a route).
func ranges(pod *model.Pod, pool netip.Prefix, key string, v6 bool) ([]netip.Prefix, []Warning, error) {
	cidrs, ws := CIDRs(pod.Annotations, key, v6)
	r, nws := Narrow(pool, cidrs)
	raw := pod.Annotations[key]
	for _, w := range nws {
		w.Key, w.Value = key, raw
		ws = append(ws, w)
	}
	if len(r) == 0 {
		return nil, ws, fmt.Errorf("pod %s: annotation %s=%q: no entry lies inside node pool %s", pod.Key(), key, raw, pool)
	}
	return r, ws, nil
}

func noPool(pod *model.Pod, node *model.Node, family, key, source, field string) error {
	return fmt.Errorf("pod %s wants %s (from the %s) but node %s has no %s pool (NodeConfig spec.%s is empty); set annotation %s: \"false\" on the pod or give the node a pool",
		pod.Key(), family, source, node.Name, family, field, key)
}
