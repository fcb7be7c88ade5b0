package main

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/agent"
	"github.com/fritzlab/flock/pkg/model"
)

// drainReport turns the agent's draining pools into the NodeConfig's
// status.drainingPools, and says which pools started and which finished
// draining since the last report.
func drainReport(prev map[string]bool, drains []agent.Drain) (pools []v1alpha1.DrainingPool, started, drained []string, now map[string]bool) {
	now = map[string]bool{}
	for _, d := range drains {
		c := d.Prefix.String()
		now[c] = true
		pools = append(pools, v1alpha1.DrainingPool{CIDR: c, Allocations: int32(d.Allocations)})
		if !prev[c] {
			started = append(started, c)
		}
	}
	for c := range prev {
		if !now[c] {
			drained = append(drained, c)
		}
	}
	return pools, started, drained, now
}

// reportDrains writes the draining pools to the NodeConfig's status and
// an Event on it when one starts or finishes draining. It runs under the
// agent's lock: it only stores and pokes.
func reportDrains(k *kubeParts, n *model.Node, drains []agent.Drain) {
	pools, started, drained, now := drainReport(k.draining, drains)
	k.draining = now
	k.src.SetDrainingPools(pools)
	if k.rec == nil {
		return
	}
	uid := k.src.NodeConfigUID()
	if len(started) > 0 {
		k.rec.NodeConfigEvent(uid, corev1.EventTypeWarning, "PoolDraining", fmt.Sprintf(
			"pods still hold addresses in the former pool(s) %s: they stay routed and announced until those pods are deleted (current pools %s, %s)",
			strings.Join(started, ", "), n.Pool6, n.Pool4))
	}
	if len(drained) > 0 {
		k.rec.NodeConfigEvent(uid, corev1.EventTypeNormal, "PoolDrained", fmt.Sprintf(
			"no pod holds an address in the former pool(s) %s any more: no longer routed or announced", strings.Join(drained, ", ")))
	}
}
