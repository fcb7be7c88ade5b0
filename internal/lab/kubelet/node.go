package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// heartbeatPeriod is how often the Node's Ready condition is renewed
// (kubelet's default node status update frequency is 10 s; 20 s is plenty
// against heartbeatTimeout).
const heartbeatPeriod = 20 * time.Second

// kubeletVersion is what `kubectl get nodes` shows as VERSION.
const kubeletVersion = "v1.37.2-flock-lab"

// registerNode creates the Node if it does not exist (flock-lab up creates
// it first, with its labels), fills addresses and node info when empty,
// and sets Ready. It retries until it works or ctx ends, as kubelet does
// while the API server is not there yet.
func (k *kubelet) registerNode(ctx context.Context) error {
	for {
		err := k.ensureNode(ctx)
		if err == nil {
			return nil
		}
		k.log.Warn("register node", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("register node %s: %w", k.cfg.NodeName, err)
		case <-time.After(2 * time.Second):
		}
	}
}

func (k *kubelet) ensureNode(ctx context.Context) error {
	nodes := k.cs.CoreV1().Nodes()
	node, err := nodes.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err = nodes.Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: k.cfg.NodeName,
			Labels: map[string]string{
				"kubernetes.io/hostname": k.cfg.NodeName,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     runtime.GOARCH,
			},
		}}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			node, err = nodes.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("get or create node %s: %w", k.cfg.NodeName, err)
	}
	st := map[string]any{}
	if len(node.Status.Addresses) == 0 {
		addrs := []v1.NodeAddress{}
		for _, ip := range k.hostIPs {
			addrs = append(addrs, v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip})
		}
		st["addresses"] = append(addrs, v1.NodeAddress{Type: v1.NodeHostName, Address: k.cfg.NodeName})
	}
	if node.Status.NodeInfo.KubeletVersion == "" {
		st["nodeInfo"] = map[string]string{
			"kubeletVersion":          kubeletVersion,
			"containerRuntimeVersion": "flock-lab://kubelet-lite",
			"operatingSystem":         "linux",
			"architecture":            runtime.GOARCH,
		}
	}
	if len(st) > 0 {
		// A JSON merge patch replaces the (empty) address list whole; a
		// strategic one would merge two InternalIPs by their type.
		patch, _ := json.Marshal(map[string]any{"status": st})
		if _, err := nodes.Patch(ctx, k.cfg.NodeName, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
			return fmt.Errorf("patch status of node %s: %w", k.cfg.NodeName, err)
		}
	}
	return k.setNodeReady(ctx, true)
}

// setNodeReady patches the Node's Ready condition (only that condition: a
// strategic merge by type leaves the agent's NetworkUnavailable alone).
func (k *kubelet) setNodeReady(ctx context.Context, ready bool) error {
	node, err := k.cs.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get node %s: %w", k.cfg.NodeName, err)
	}
	t := now()
	c := v1.NodeCondition{
		Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady",
		Message: "flock-lab kubelet-lite is posting ready status", LastHeartbeatTime: t, LastTransitionTime: t,
	}
	if !ready {
		c.Status, c.Reason, c.Message = v1.ConditionFalse, "KubeletStopped", "flock-lab kubelet-lite stopped"
	}
	for _, old := range node.Status.Conditions {
		if old.Type == v1.NodeReady && old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []v1.NodeCondition{c}}})
	if err != nil {
		return err
	}
	node, err = k.cs.CoreV1().Nodes().Patch(ctx, k.cfg.NodeName, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("patch Ready condition of node %s: %w", k.cfg.NodeName, err)
	}
	if ready {
		return k.untaint(ctx, node)
	}
	return nil
}

// untaint removes the not-ready and unreachable taints, which the API
// server's TaintNodesByCondition admission puts on every new Node and which
// only the node lifecycle controller (absent from the lab) removes.
func (k *kubelet) untaint(ctx context.Context, node *v1.Node) error {
	keep := []v1.Taint{}
	for _, t := range node.Spec.Taints {
		if t.Key != v1.TaintNodeNotReady && t.Key != v1.TaintNodeUnreachable {
			keep = append(keep, t)
		}
	}
	if len(keep) == len(node.Spec.Taints) {
		return nil
	}
	// A merge patch replaces the list; the resourceVersion makes it fail
	// rather than drop a taint added meanwhile (the next heartbeat retries).
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": node.ResourceVersion},
		"spec":     map[string]any{"taints": keep},
	})
	if err != nil {
		return err
	}
	if _, err := k.cs.CoreV1().Nodes().Patch(ctx, k.cfg.NodeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("remove not-ready taints of node %s: %w", k.cfg.NodeName, err)
	}
	k.log.Info("removed not-ready taints", "taints", len(node.Spec.Taints)-len(keep))
	return nil
}

// heartbeat renews Ready every heartbeatPeriod (re-creating the Node if it
// was deleted); when ctx ends it sets
// Ready=False, so the binder of the other nodes stops sending pods here at
// once instead of after heartbeatTimeout.
func (k *kubelet) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if err := k.setNodeReady(c, false); err != nil {
				k.log.Warn("mark node not ready", "err", err)
			}
			return
		case <-t.C:
			// ensureNode, not just the condition: a deleted Node comes back.
			if err := k.ensureNode(ctx); err != nil && ctx.Err() == nil {
				k.log.Warn("node heartbeat", "err", err)
			}
		}
	}
}
