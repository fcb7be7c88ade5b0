package nodepool

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/leaderterm"
)

// DefaultResync is how often a pass runs without a change.
const DefaultResync = 30 * time.Second

// Options are what a Controller works with.
type Options struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Log     *slog.Logger
	// Resync is DefaultResync when 0.
	Resync time.Duration
}

// Controller makes the NodeConfigs of the Nodes NodePools select. Run it
// only while leading (pkg/leader): two running at once could hand one
// block to two Nodes.
type Controller struct {
	o   Options
	log *slog.Logger

	created, deleted, exhausted atomic.Int64
}

// Stats counts what the controller did since it was built.
type Stats struct {
	// Created and Deleted count NodeConfigs; Exhausted counts Events
	// recorded for a pool with no block for a Node.
	Created, Deleted, Exhausted int64
}

// New builds a controller; nothing runs until Run.
func New(o Options) *Controller {
	if o.Resync == 0 {
		o.Resync = DefaultResync
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Controller{o: o, log: o.Log}
}

// Stats returns the counters (for metrics).
func (c *Controller) Stats() Stats {
	return Stats{Created: c.created.Load(), Deleted: c.deleted.Load(), Exhausted: c.exhausted.Load()}
}

// term is one leadership term: informers started afresh, so a new leader
// plans from what the API server holds now, never from a cache that
// predates the last leader's writes.
type term struct {
	*Controller
	nodes, configs, pools cache.SharedIndexInformer
	rec                   record.EventRecorder
	warned                map[Event]bool // Events recorded this term
}

// Run runs passes until ctx ends; it returns ctx's error, or why the
// caches could not sync.
func (c *Controller) Run(ctx context.Context) error {
	t := &term{Controller: c, warned: map[Event]bool{}}
	nf := informers.NewSharedInformerFactory(c.o.Kube, 0)
	t.nodes = nf.Core().V1().Nodes().Informer()
	df := dynamicinformer.NewDynamicSharedInformerFactory(c.o.Dynamic, 0)
	t.configs = df.ForResource(v1alpha1.NodeConfigGVR).Informer()
	t.pools = df.ForResource(v1alpha1.NodePoolGVR).Informer()
	var stop func()
	t.rec, stop = leaderterm.Recorder(ctx, c.o.Kube)
	defer stop()
	return leaderterm.Run(ctx, leaderterm.Options{
		Name:      "nodepool",
		Informers: []cache.SharedIndexInformer{t.nodes, t.configs, t.pools},
		Factories: []leaderterm.Factory{nf, df},
		Changed:   specChanged,
		Resync:    c.o.Resync,
		Pass:      t.pass,
		Log:       c.log,
	})
}

// specChanged filters out status-only updates (kubelet heartbeats, the
// agents' conditions, this controller's own pool status).
func specChanged(old, cur any) bool {
	switch o := old.(type) {
	case *corev1.Node:
		n := cur.(*corev1.Node)
		return o.UID != n.UID || !equality.Semantic.DeepEqual(o.Labels, n.Labels) || !slices.Equal(o.Spec.PodCIDRs, n.Spec.PodCIDRs)
	case *unstructured.Unstructured:
		n := cur.(*unstructured.Unstructured)
		return o.GetGeneration() != n.GetGeneration() || !equality.Semantic.DeepEqual(o.GetLabels(), n.GetLabels()) ||
			!equality.Semantic.DeepEqual(o.GetAnnotations(), n.GetAnnotations()) ||
			!equality.Semantic.DeepEqual(o.GetOwnerReferences(), n.GetOwnerReferences())
	}
	return true
}

// pass plans from the caches and applies the plan. Every write the pass
// makes goes into the cache at once, so the next pass never hands out a
// block whose NodeConfig the watch has not brought back yet.
func (t *term) pass(ctx context.Context) error {
	var nodes []Node
	for _, o := range t.nodes.GetStore().List() {
		n := o.(*corev1.Node)
		nodes = append(nodes, Node{Name: n.Name, UID: n.UID, Labels: n.Labels, PodCIDRs: n.Spec.PodCIDRs})
	}
	configs, err := leaderterm.FromStore[v1alpha1.NodeConfig](t.configs.GetStore())
	if err != nil {
		return err
	}
	pools, err := leaderterm.FromStore[v1alpha1.NodePool](t.pools.GetStore())
	if err != nil {
		return err
	}
	plan := Compute(pools, nodes, configs, time.Now())
	nc := t.o.Dynamic.Resource(v1alpha1.NodeConfigGVR)
	var errs []error
	for _, obj := range plan.Create {
		u, err := toUnstructured(obj)
		if err == nil {
			u, err = nc.Create(ctx, u, metav1.CreateOptions{FieldManager: "flock-controller"})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("create nodeconfig %s: %w", obj.Name, err))
			continue
		}
		t.configs.GetStore().Add(u)
		t.created.Add(1)
		t.log.Info("created nodeconfig", "node", obj.Name, "pool", obj.Labels[v1alpha1.LabelNodePool], "cidr6", obj.Spec.CIDR6, "cidr4", obj.Spec.CIDR4)
	}
	for _, obj := range plan.Update {
		u, err := toUnstructured(obj)
		if err == nil {
			u, err = nc.Update(ctx, u, metav1.UpdateOptions{FieldManager: "flock-controller"})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("update nodeconfig %s: %w", obj.Name, err))
			continue
		}
		t.configs.GetStore().Update(u)
		t.log.Info("updated nodeconfig", "node", obj.Name, "pool", obj.Labels[v1alpha1.LabelNodePool], "cidr6", obj.Spec.CIDR6, "cidr4", obj.Spec.CIDR4)
	}
	for _, obj := range plan.Delete {
		// The preconditions: never delete a NodeConfig an operator changed
		// (or took over) since the cache saw it.
		uid, rv := obj.UID, obj.ResourceVersion
		err := nc.Delete(ctx, obj.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete nodeconfig %s: %w", obj.Name, err))
			continue
		}
		if u, err := toUnstructured(obj); err == nil {
			t.configs.GetStore().Delete(u)
		}
		t.deleted.Add(1)
		t.log.Info("deleted nodeconfig: its node is gone", "node", obj.Name, "cidr6", obj.Spec.CIDR6, "cidr4", obj.Spec.CIDR4)
	}
	for _, np := range pools {
		st, ok := plan.Status[np.Name]
		if !ok || equality.Semantic.DeepEqual(st, np.Status) {
			continue
		}
		up := np.DeepCopy()
		up.Status = st
		u, err := toUnstructured(up)
		if err == nil {
			u, err = t.o.Dynamic.Resource(v1alpha1.NodePoolGVR).UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: "flock-controller"})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("update nodepool %s status: %w", np.Name, err))
			continue
		}
		t.pools.GetStore().Update(u)
	}
	for _, e := range plan.Events {
		if t.warned[e] {
			continue
		}
		t.warned[e] = true
		t.exhausted.Add(1)
		t.log.Warn(e.Message, "pool", e.Pool, "reason", e.Reason)
		for _, np := range pools {
			if np.Name == e.Pool {
				ref := np.DeepCopy()
				ref.TypeMeta = metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.NodePoolKind}
				t.rec.Event(ref, corev1.EventTypeWarning, e.Reason, e.Message)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of the plan's writes failed, first: %w", len(errs), errs[0])
	}
	return nil
}

func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	if u.GetKind() == "" {
		switch obj.(type) {
		case *v1alpha1.NodeConfig:
			u.SetAPIVersion(v1alpha1.SchemeGroupVersion.String())
			u.SetKind(v1alpha1.NodeConfigKind)
		case *v1alpha1.NodePool:
			u.SetAPIVersion(v1alpha1.SchemeGroupVersion.String())
			u.SetKind(v1alpha1.NodePoolKind)
		}
	}
	return u, nil
}
