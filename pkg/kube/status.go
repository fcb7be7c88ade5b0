package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// The NodeConfig condition the agent owns (and BGPConfigured, see
// SetBGPCondition); the API package defines them.
const (
	// ConditionAccepted is True when the agent uses the NodeConfig, False
	// when the agent rejected it although the schema let it through.
	ConditionAccepted = v1alpha1.ConditionAccepted
	ReasonValid       = "Valid"
	ReasonInvalid     = v1alpha1.ReasonInvalid
)

// Status retries back off from statusRetryMin to statusRetryMax.
const (
	statusRetryMin = time.Second
	statusRetryMax = 5 * time.Minute
)

// SetBGPCondition sets the NodeConfig's BGPConfigured condition (reasons in
// api/v1alpha1); the status worker writes it. A generation of 0 stands for
// the generation of the object it is written to: the BGP controller cannot
// know which one a NodeConfig it could not read has.
func (c *NodeConfigs) SetBGPCondition(ok bool, reason, message string, generation int64) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	c.bgp.Store(&metav1.Condition{Type: v1alpha1.ConditionBGPConfigured, Status: status,
		Reason: reason, Message: message, ObservedGeneration: generation})
	poke(c.statusPoke)
}

// SetDrainingPools sets the NodeConfig's status.drainingPools (nil or
// empty: none); the status worker writes it.
func (c *NodeConfigs) SetDrainingPools(pools []v1alpha1.DrainingPool) {
	cp := slices.Clone(pools)
	c.draining.Store(&cp)
	poke(c.statusPoke)
}

// SetUsage sets the NodeConfig's status.usage; the status worker writes it
// when it differs from what the object says. The caller rate-limits (the
// agent reports every few seconds, and only a change).
func (c *NodeConfigs) SetUsage(u *v1alpha1.NodeUsage) {
	c.usage.Store(u)
	poke(c.statusPoke)
}

// runStatus keeps the NodeConfig's Accepted condition up to date: it wakes
// on every change, computes the condition from the cached object and writes
// it only when it differs from what the object already says.
func (c *NodeConfigs) runStatus(ctx context.Context) {
	var (
		retry   <-chan time.Time
		backoff = statusRetryMin
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.statusPoke:
		case <-retry:
		}
		retry = nil
		if err := c.syncStatus(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Error("update nodeconfig status", "node", c.node, "err", err, "retry", backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, statusRetryMax)
			continue
		}
		backoff = statusRetryMin
	}
}

// syncStatus writes the Accepted condition of the cached NodeConfig, and
// the BGPConfigured one when the BGP controller reported one.
func (c *NodeConfigs) syncStatus(ctx context.Context) error {
	obj, ok, err := c.inf.GetStore().GetByKey(c.node)
	if err != nil || !ok {
		return err
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	conds := conditions(u)
	want := c.acceptance(u)
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	acceptedChanged := setCondition(&conds, want)
	bgpChanged := false
	if b := c.bgp.Load(); b != nil {
		bc := *b
		if bc.ObservedGeneration == 0 {
			bc.ObservedGeneration = u.GetGeneration()
		}
		bgpChanged = setCondition(&conds, bc)
	}
	status := map[string]any{
		"observedGeneration": want.ObservedGeneration,
		"conditions":         conds,
	}
	// The agent's reports, compared with what the object says the same way.
	have := reportedStatus(u)
	d := c.draining.Load()
	drainChanged := d != nil && !equality.Semantic.DeepEqual(*d, have.DrainingPools)
	if drainChanged {
		if len(*d) == 0 {
			status["drainingPools"] = nil // a merge patch's null removes it
		} else {
			status["drainingPools"] = *d
		}
	}
	usage := c.usage.Load()
	usageChanged := usage != nil && (have.Usage == nil || !equality.Semantic.DeepEqual(*usage, *have.Usage))
	if usageChanged {
		status["usage"] = usage
	}
	if !acceptedChanged && !bgpChanged && !drainChanged && !usageChanged && observed == want.ObservedGeneration {
		return nil
	}
	// A merge patch replaces the whole list; the agent is the only writer
	// of this object's conditions.
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	if _, err := c.client.Resource(NodeConfigResource).Patch(ctx, c.node, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: "flock-agent"}, "status"); err != nil {
		return fmt.Errorf("patch nodeconfig %s status: %w", c.node, err)
	}
	switch {
	case !acceptedChanged && observed == want.ObservedGeneration:
		// Only the BGP condition or the usage changed; nothing to log.
	case want.Status == metav1.ConditionFalse:
		c.log.Error("nodeconfig rejected", "node", c.node, "generation", want.ObservedGeneration, "err", want.Message)
	default:
		c.log.Info("nodeconfig accepted", "node", c.node, "generation", want.ObservedGeneration)
	}
	return nil
}

// reportedStatus decodes the parts of the object's status the agent
// reports besides its conditions (status.drainingPools, status.usage),
// each on its own: a part the agent cannot read is one it will overwrite
// (the zero value), and a bad one does not hide the other.
func reportedStatus(u *unstructured.Unstructured) v1alpha1.NodeConfigStatus {
	var out v1alpha1.NodeConfigStatus
	for _, f := range []string{"drainingPools", "usage"} {
		v, ok, err := unstructured.NestedFieldNoCopy(u.Object, "status", f)
		if err != nil || !ok {
			continue
		}
		var part v1alpha1.NodeConfigStatus
		if runtime.DefaultUnstructuredConverter.FromUnstructured(map[string]any{f: v}, &part) != nil {
			continue
		}
		if f == "usage" {
			out.Usage = part.Usage
		} else {
			out.DrainingPools = part.DrainingPools
		}
	}
	return out
}

// setCondition puts want into conds unless an equal one is there already,
// and tells whether it did.
func setCondition(conds *[]metav1.Condition, want metav1.Condition) bool {
	if cur := meta.FindStatusCondition(*conds, want.Type); cur != nil && sameCondition(*cur, want) {
		return false
	}
	meta.SetStatusCondition(conds, want)
	return true
}

// acceptance is the Accepted condition the agent gives a NodeConfig.
func (c *NodeConfigs) acceptance(u *unstructured.Unstructured) metav1.Condition {
	cond := metav1.Condition{
		Type:               ConditionAccepted,
		Status:             metav1.ConditionTrue,
		Reason:             ReasonValid,
		Message:            "the agent uses this configuration",
		ObservedGeneration: u.GetGeneration(),
	}
	if _, err := c.validate(u); err != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonInvalid, err.Error()
		if overlapMessage(err) != "" {
			cond.Reason = ReasonPoolOverlap
		}
	}
	return cond
}

// conditions decodes the object's status.conditions; a status the agent
// cannot read is one it will overwrite.
func conditions(u *unstructured.Unstructured) []metav1.Condition {
	raw, ok, err := unstructured.NestedSlice(u.Object, "status", "conditions")
	if err != nil || !ok {
		return nil
	}
	var out []metav1.Condition
	for _, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			continue
		}
		var c metav1.Condition
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &c); err == nil {
			out = append(out, c)
		}
	}
	return out
}

func sameCondition(a, b metav1.Condition) bool {
	return a.Status == b.Status && a.Reason == b.Reason && a.Message == b.Message && a.ObservedGeneration == b.ObservedGeneration
}
