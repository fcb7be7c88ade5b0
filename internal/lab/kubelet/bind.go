package kubelet

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// heartbeatTimeout is how old a Ready node's heartbeat may be for the node
// to get pods: the lab has no node lifecycle controller to mark a node whose
// kubelet-lite died NotReady, so the binder looks at the heartbeat itself.
const heartbeatTimeout = 60 * time.Second

// binding is one decision of assign: pod goes to node.
type binding struct {
	Pod  *v1.Pod
	Node string
}

// assign decides where every pending pod (no spec.nodeName) goes. Every
// kubelet-lite computes it from its own informer caches and binds only the
// pods assigned to its own node, so the choice must not depend on who
// looks or on which bindings have landed yet. It replays the live pods in
// creation order (then namespace/name/uid): a bound pod adds one to its
// node's load, a pending pod goes to the feasible node with the least load
// so far (ties to the first name) and adds one there. Binding a pod to the
// node chosen for it changes nothing in that replay, so concurrent binders
// with views that differ only in which bindings they have seen agree on
// every pod: each pod is bound once, by one node (the API server's 409
// settles the rest). Pods created one by one go round-robin, a batch
// spreads evenly, and a pod re-created after a deletion fills the gap.
// Candidates are the Ready, schedulable nodes with a fresh heartbeat;
// nodeSelector and NoSchedule/NoExecute taints are honoured.
func assign(nodes []*v1.Node, pods []*v1.Pod, now time.Time) []binding {
	var cands []*v1.Node
	for _, n := range nodes {
		if nodeReady(n, now) && !n.Spec.Unschedulable {
			cands = append(cands, n)
		}
	}
	slices.SortFunc(cands, func(a, b *v1.Node) int { return cmp.Compare(a.Name, b.Name) })
	var live []*v1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			live = append(live, p)
		}
	}
	slices.SortFunc(live, func(a, b *v1.Pod) int {
		return cmp.Or(
			a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time),
			cmp.Compare(a.Namespace, b.Namespace),
			cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.UID, b.UID))
	})
	load := map[string]int{}
	var out []binding
	for _, p := range live {
		if p.Spec.NodeName != "" {
			load[p.Spec.NodeName]++
			continue
		}
		var best *v1.Node
		for _, n := range cands {
			if feasible(p, n) && (best == nil || load[n.Name] < load[best.Name]) {
				best = n
			}
		}
		if best == nil {
			continue
		}
		load[best.Name]++
		out = append(out, binding{Pod: p, Node: best.Name})
	}
	return out
}

// nodeReady says whether the node's Ready condition is True with a
// heartbeat younger than heartbeatTimeout.
func nodeReady(n *v1.Node, now time.Time) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue && now.Sub(c.LastHeartbeatTime.Time) < heartbeatTimeout
		}
	}
	return false
}

// feasible checks the pod's nodeSelector and the node's scheduling taints.
func feasible(p *v1.Pod, n *v1.Node) bool {
	if len(p.Spec.NodeSelector) > 0 && !labels.SelectorFromSet(p.Spec.NodeSelector).Matches(labels.Set(n.Labels)) {
		return false
	}
	for i := range n.Spec.Taints {
		t := &n.Spec.Taints[i]
		if t.Effect == v1.TaintEffectPreferNoSchedule {
			continue
		}
		if !slices.ContainsFunc(p.Spec.Tolerations, func(tol v1.Toleration) bool {
			return tol.ToleratesTaint(klog.Background(), t, false)
		}) {
			return false
		}
	}
	return true
}

// bindRetry is how long the binder waits before binding a pod again that
// it already tried to bind (the API answered, but its cache has not seen
// the result yet, or the call failed).
const bindRetry = 5 * time.Second

// runBinder binds the pending pods that assign gives to this node, on
// every change of pods or nodes and every resyncBind.
func (k *kubelet) runBinder(ctx context.Context, poke <-chan struct{}) {
	const resyncBind = 2 * time.Second
	tried := map[types.UID]time.Time{}
	t := time.NewTicker(resyncBind)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poke:
		case <-t.C:
		}
		nodes, err := k.nodes.List(labels.Everything())
		if err != nil {
			continue
		}
		pods, err := k.allPods.List(labels.Everything())
		if err != nil {
			continue
		}
		now := time.Now()
		for uid, at := range tried {
			if now.Sub(at) > time.Minute {
				delete(tried, uid)
			}
		}
		for _, b := range assign(nodes, pods, now) {
			if b.Node != k.cfg.NodeName || now.Sub(tried[b.Pod.UID]) < bindRetry {
				continue
			}
			tried[b.Pod.UID] = now
			k.bind(ctx, b.Pod)
		}
	}
}

// bind posts the pod's Binding to this node (the pods/binding subresource,
// with the pod's UID as precondition, as kube-scheduler does).
func (k *kubelet) bind(ctx context.Context, p *v1.Pod) {
	b := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		Target:     v1.ObjectReference{Kind: "Node", Name: k.cfg.NodeName},
	}
	err := k.cs.CoreV1().Pods(p.Namespace).Bind(ctx, b, metav1.CreateOptions{})
	switch {
	case err == nil:
		k.log.Info("pod bound", "pod", p.Namespace+"/"+p.Name)
		k.schedRecorder.Eventf(p, v1.EventTypeNormal, "Scheduled",
			"Successfully assigned %s/%s to %s", p.Namespace, p.Name, k.cfg.NodeName)
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		// Another node's kubelet-lite bound it first, or it is gone.
		k.log.Debug("pod not bound", "pod", p.Namespace+"/"+p.Name, "err", err)
	default:
		k.log.Warn("bind pod", "pod", p.Namespace+"/"+p.Name, "err", fmt.Errorf("bind %s/%s to %s: %w", p.Namespace, p.Name, k.cfg.NodeName, err))
	}
}
