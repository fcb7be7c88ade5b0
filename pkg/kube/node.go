package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// The Node condition the agent keeps.
const (
	ReasonFlockReady  = "FlockReady"
	MessageFlockReady = "flock agent is running"
	// NodeReadyEvery is how often the condition is re-asserted: something
	// else (a cloud route controller, a previous CNI) may set it back.
	NodeReadyEvery = 60 * time.Second
)

// MarkNodeNetworkReady sets the Node's NetworkUnavailable condition to
// False. It reads the Node first so lastTransitionTime moves only when
// the status really changes; a strategic merge patch on status.conditions
// (merged by type) leaves every other condition alone.
func MarkNodeNetworkReady(ctx context.Context, client kubernetes.Interface, node string, now time.Time) error {
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get node %s: %w", node, err)
	}
	ts := metav1.NewTime(now).Rfc3339Copy()
	// A map, not a corev1.NodeCondition: the struct would send zero times as
	// null, which a strategic merge patch reads as "delete this field".
	cond := map[string]any{
		"type":              corev1.NodeNetworkUnavailable,
		"status":            corev1.ConditionFalse,
		"reason":            ReasonFlockReady,
		"message":           MessageFlockReady,
		"lastHeartbeatTime": ts,
	}
	if cur := nodeCondition(n, corev1.NodeNetworkUnavailable); cur == nil || cur.Status != corev1.ConditionFalse {
		cond["lastTransitionTime"] = ts
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []any{cond}}})
	if err != nil {
		return err
	}
	if _, err := client.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("patch node %s condition %s: %w", node, corev1.NodeNetworkUnavailable, err)
	}
	return nil
}

// KeepNodeNetworkReady marks the node's network ready now and every
// `every` until ctx ends; failures are logged and retried at the next tick.
func KeepNodeNetworkReady(ctx context.Context, client kubernetes.Interface, node string, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := true // so the first success is logged
	for {
		err := MarkNodeNetworkReady(ctx, client, node, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("mark node network ready", "node", node, "err", err)
			failing = true
		case err == nil && failing:
			log.Info("node network marked ready", "node", node)
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func nodeCondition(n *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == t {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}
