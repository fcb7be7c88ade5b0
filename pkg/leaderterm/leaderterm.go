// Package leaderterm runs one leadership term of a flock-controller controller
// (pkg/nodepool, pkg/lbipam), level triggered: informers started afresh,
// handlers that only filter and poke one slot, and a pass that decides from
// the caches on every poke, every resync and a second after a pass failed.
// What each controller watches, which updates matter and what a pass does
// stay with the controller.
package leaderterm

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// Component is the Event source of flock-controller's controllers.
const Component = "flock-controller"

// Factory is an informer factory (informers.SharedInformerFactory,
// dynamicinformer.DynamicSharedInformerFactory).
type Factory interface {
	Start(stop <-chan struct{})
	Shutdown()
}

// Options are one term.
type Options struct {
	// Name prefixes errors ("lbipam: caches did not sync").
	Name string
	// Informers are watched; Factories start them.
	Informers []cache.SharedIndexInformer
	Factories []Factory
	// Changed says whether an update can change the decision; nil: all do.
	Changed func(old, cur any) bool
	// Resync is the period of a pass without a change.
	Resync time.Duration
	// Pass decides from the caches and writes the difference.
	Pass func(ctx context.Context) error
	// Log (scoped to the controller) gets "caches synced" and each failed
	// pass.
	Log *slog.Logger
}

// Run runs passes until ctx ends; it returns ctx's error, or why the
// informers could not be watched or their caches synced.
func Run(ctx context.Context, o Options) error {
	poke := make(chan struct{}, 1)
	trigger := func() {
		select {
		case poke <- struct{}{}:
		default:
		}
	}
	for _, inf := range o.Informers {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { trigger() },
			DeleteFunc: func(any) { trigger() },
			UpdateFunc: func(old, cur any) {
				if o.Changed == nil || o.Changed(old, cur) {
					trigger()
				}
			},
		}); err != nil {
			return fmt.Errorf("%s: %w", o.Name, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel() // Shutdown waits for the informers, which stop with ctx
		for _, f := range o.Factories {
			f.Shutdown()
		}
	}()
	for _, f := range o.Factories {
		f.Start(ctx.Done())
	}
	var synced []cache.InformerSynced
	for _, inf := range o.Informers {
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: caches did not sync", o.Name)
	}
	o.Log.Info("caches synced")
	tick := time.NewTicker(o.Resync)
	defer tick.Stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	<-retry.C
	trigger()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poke:
		case <-tick.C:
		case <-retry.C:
		}
		if err := o.Pass(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			o.Log.Warn("pass failed, retrying", "err", err)
			retry.Reset(time.Second)
		}
	}
}

// Recorder records Events through kube as Component until ctx ends or
// stop is called.
func Recorder(ctx context.Context, kube kubernetes.Interface) (rec record.EventRecorder, stop func()) {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	return b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component}), b.Shutdown
}

// FromStore converts every object of a dynamic informer's store; errors
// name the object.
func FromStore[T any](s cache.Store) ([]*T, error) {
	var out []*T
	for _, o := range s.List() {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		v := new(T)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, v); err != nil {
			return nil, fmt.Errorf("convert %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		out = append(out, v)
	}
	return out, nil
}
