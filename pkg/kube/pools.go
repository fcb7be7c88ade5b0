package kube

import (
	"cmp"
	"errors"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/kube/apiclient"
	"github.com/fritzlab/flock/pkg/model"
)

// ReasonPoolOverlap is the reason of the Accepted=False condition and the
// Warning Event of a NodeConfig rejected for a pool another one holds.
const ReasonPoolOverlap = v1alpha1.ReasonPoolOverlap

// NodeConfigEvents records Events about the node's NodeConfig (Recorder).
type NodeConfigEvents interface {
	NodeConfigEvent(uid, eventType, reason, message string)
}

// newPoolsInformer watches every NodeConfig of the cluster for the overlap
// check, keeping of each only its name, age and pools: an agent holds a few
// hundred bytes per node, not every node's BGP peers.
func newPoolsInformer(client dynamic.Interface) cache.SharedIndexInformer {
	inf := apiclient.NewDynamicInformer(client, NodeConfigResource, nil, cache.Indexers{})
	// The error is only for an informer that already runs.
	_ = inf.SetTransform(slimPools)
	return inf
}

// slimPools is the pools informer's transform.
func slimPools(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil // a DeletedFinalStateUnknown tombstone
	}
	spec := map[string]any{}
	for _, f := range []string{"cidr6", "cidr4"} {
		if v, ok, _ := unstructured.NestedString(u.Object, "spec", f); ok {
			spec[f] = v
		}
	}
	slim := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	slim.SetAPIVersion(u.GetAPIVersion())
	slim.SetKind(u.GetKind())
	slim.SetName(u.GetName())
	slim.SetUID(u.GetUID())
	slim.SetResourceVersion(u.GetResourceVersion())
	slim.SetCreationTimestamp(u.GetCreationTimestamp())
	return slim, nil
}

// poolsOf is the overlap check's view of a NodeConfig object.
func poolsOf(u *unstructured.Unstructured) model.Pools {
	cidr6, _, _ := unstructured.NestedString(u.Object, "spec", "cidr6")
	cidr4, _, _ := unstructured.NestedString(u.Object, "spec", "cidr4")
	return model.PoolsFromSpec(u.GetName(), u.GetCreationTimestamp().Time, cidr6, cidr4)
}

// otherPools are the pools of every NodeConfig the pools informer has,
// oldest first (so an overlap names the oldest NodeConfig it is with).
func (c *NodeConfigs) otherPools() []model.Pools {
	var out []model.Pools
	for _, obj := range c.pools.GetStore().List() {
		if u, ok := obj.(*unstructured.Unstructured); ok && u.GetName() != c.node {
			out = append(out, poolsOf(u))
		}
	}
	slices.SortFunc(out, func(a, b model.Pools) int {
		if d := a.Created.Compare(b.Created); d != 0 {
			return d
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out
}

// recheck re-validates the node's own NodeConfig after another one changed,
// and takes the result only when the verdict on overlaps changed: other
// nodes' NodeConfigs change all the time and must not wake the agent.
func (c *NodeConfigs) recheck() {
	obj, ok, err := c.inf.GetStore().GetByKey(c.node)
	if err != nil || !ok {
		return
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	if overlapMessage(model.CheckOverlap(poolsOf(u), c.otherPools())) == c.overlap.Load() {
		return
	}
	c.set(u)
}

// overlapMessage is the message of an *model.OverlapError in err, or "".
func overlapMessage(err error) string {
	if o, ok := errors.AsType[*model.OverlapError](err); ok {
		return o.Error()
	}
	return ""
}

// noteOverlap remembers the overlap verdict set took, and records a Warning
// Event on the NodeConfig when it is a new rejection.
func (c *NodeConfigs) noteOverlap(u *unstructured.Unstructured, err error) {
	msg := overlapMessage(err)
	if c.overlap.Swap(msg) == msg || msg == "" {
		return
	}
	c.log.Error("nodeconfig rejected: pools overlap", "node", c.node, "err", msg)
	if c.events != nil {
		c.events.NodeConfigEvent(string(u.GetUID()), corev1.EventTypeWarning, ReasonPoolOverlap, msg)
	}
}

// AllPools are the pools of every NodeConfig the pools informer has, this
// node's included: the ranges no Service address may be announced in.
func (c *NodeConfigs) AllPools() []model.Pools {
	var out []model.Pools
	for _, obj := range c.pools.GetStore().List() {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			out = append(out, poolsOf(u))
		}
	}
	return out
}
