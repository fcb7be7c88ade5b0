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

	"github.com/fritzlab/flock/pkg/kube/apiclient"
)

// The Node condition the agent keeps.
const (
	ReasonFlockReady  = "FlockReady"
	MessageFlockReady = "flock agent is running"
	// ReasonFlockNotReady is NetworkUnavailable=True's reason while the
	// agent cannot network pods; the message says why.
	ReasonFlockNotReady = "FlockNotReady"
	// NodeReadyEvery is how often the condition is re-asserted: something
	// else (a cloud route controller, a previous CNI) may set it back.
	NodeReadyEvery = 60 * time.Second
)

// maxConditionMessage bounds the condition's message (the readiness error
// names every failing check).
const maxConditionMessage = 1024

// SetNodeNetwork sets the Node's NetworkUnavailable condition: False while
// the agent can network pods (notReady nil), True with reason
// FlockNotReady and notReady as the message otherwise. It reads the Node
// first so lastTransitionTime moves only when the status really changes;
// a strategic merge patch on status.conditions (merged by type) leaves
// every other condition alone.
func SetNodeNetwork(ctx context.Context, client apiclient.Interface, node string, notReady error, now time.Time) error {
	n := &corev1.Node{}
	if err := client.Get(ctx, apiclient.Nodes, "", node, n); err != nil {
		return fmt.Errorf("get node %s: %w", node, err)
	}
	ts := metav1.NewTime(now).Rfc3339Copy()
	// A map, not a corev1.NodeCondition: the struct would send zero times as
	// null, which a strategic merge patch reads as "delete this field".
	status, reason, message := corev1.ConditionFalse, ReasonFlockReady, MessageFlockReady
	if notReady != nil {
		status, reason, message = corev1.ConditionTrue, ReasonFlockNotReady, notReady.Error()
		if len(message) > maxConditionMessage {
			message = message[:maxConditionMessage] + "…"
		}
	}
	cond := map[string]any{
		"type":              corev1.NodeNetworkUnavailable,
		"status":            status,
		"reason":            reason,
		"message":           message,
		"lastHeartbeatTime": ts,
	}
	if cur := nodeCondition(n, corev1.NodeNetworkUnavailable); cur == nil || cur.Status != status {
		cond["lastTransitionTime"] = ts
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []any{cond}}})
	if err != nil {
		return err
	}
	if err := client.Patch(ctx, apiclient.Nodes, "", node, types.StrategicMergePatchType, patch, &corev1.Node{}, "status"); err != nil {
		return fmt.Errorf("patch node %s condition %s: %w", node, corev1.NodeNetworkUnavailable, err)
	}
	return nil
}

// NodeCheckEvery is how often KeepNodeNetwork asks the readiness: a
// change is written within this time, while an unchanged condition is
// re-asserted only every NodeReadyEvery.
const NodeCheckEvery = 5 * time.Second

// KeepNodeNetwork keeps the node's NetworkUnavailable condition equal to
// ready (the agent's readiness, as /readyz and CNI STATUS answer it): it
// asks every NodeCheckEvery, writes when the answer changes and re-asserts
// it every `every` until ctx ends; failed writes are logged and retried at
// the next check.
func KeepNodeNetwork(ctx context.Context, client apiclient.Interface, node string, ready func(context.Context) error, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(min(NodeCheckEvery, every))
	defer t.Stop()
	var (
		written   bool // the last write succeeded
		wasReady  bool
		lastWrite time.Time
		lastMsg   string
	)
	for {
		notReady := ready(ctx)
		msg := ""
		if notReady != nil {
			msg = notReady.Error()
		}
		if !written || (notReady == nil) != wasReady || msg != lastMsg || time.Since(lastWrite) >= every {
			err := SetNodeNetwork(ctx, client, node, notReady, time.Now())
			switch {
			case err != nil && ctx.Err() == nil:
				log.Error("set node network condition", "node", node, "err", err)
				written = false
			case err == nil:
				if !written || (notReady == nil) != wasReady {
					log.Info("node network condition set", "node", node, "ready", notReady == nil, "reason", msg)
				}
				written, wasReady, lastWrite, lastMsg = true, notReady == nil, time.Now(), msg
			}
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
