package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/kube/apiclient"
	"github.com/fritzlab/flock/pkg/model"
)

// Recorder reports a pod's annotation problems in the agent's log and as a
// Warning Event on the pod, where `kubectl describe pod` shows them, and
// writes the Events of the agent's Node and NodeConfig.
//
// It writes core/v1 Events as client-go's record package does, without
// linking it (that package brings strategic merge patches and the OpenAPI
// models, 2–3 MiB of the agent's resident binary): one worker writes them
// in the background, so a CNI ADD never waits for the API; an Event
// repeated within EventAggregateWindow bumps the count of the one already
// written; and each object gets at most EventBurst Events, then one per
// EventRefill, so a pod retried in a loop does not flood the API (the
// agent's log still has every message).
type Recorder struct {
	node   string
	log    *slog.Logger
	client apiclient.Interface
	queue  chan eventKey
	stop   context.CancelFunc
	done   chan struct{}

	// Only the worker touches these.
	written map[eventKey]*writtenEvent
	budget  map[corev1.ObjectReference]*tokens
}

// The limits of Recorder, those of client-go's record package.
const (
	EventAggregateWindow = 10 * time.Minute
	EventBurst           = 25
	EventRefill          = 5 * time.Minute
	// eventQueue bounds the Events waiting for the worker; more are dropped.
	eventQueue = 256
	// eventCache bounds the Events remembered for aggregation, and the
	// objects' budgets.
	eventCache = 4096
)

// eventKey is one Event to write, and what makes two Events the same one.
type eventKey struct {
	ref                    corev1.ObjectReference
	eventType, reason, msg string
}

type writtenEvent struct {
	namespace, name string
	count           int32
	last            time.Time
}

type tokens struct {
	left float64
	at   time.Time
}

// NewRecorder starts the worker that writes Events as component flock-agent
// on node, until ctx ends or Shutdown.
func NewRecorder(ctx context.Context, client apiclient.Interface, node string, log *slog.Logger) *Recorder {
	ctx, stop := context.WithCancel(ctx)
	r := &Recorder{
		node:    node,
		log:     log,
		client:  client,
		queue:   make(chan eventKey, eventQueue),
		stop:    stop,
		done:    make(chan struct{}),
		written: map[eventKey]*writtenEvent{},
		budget:  map[corev1.ObjectReference]*tokens{},
	}
	go r.run(ctx)
	return r
}

// PodWarning logs a warning about a pod and records it as an Event on it.
func (r *Recorder) PodWarning(pod *model.Pod, reason, message string) {
	r.log.Warn(message, "pod", pod.Key(), "reason", reason)
	// The Event only needs the pod's identity; the UID ties it to this
	// incarnation of the pod, which is how `kubectl describe` finds it.
	r.event(corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: types.UID(pod.UID)},
		corev1.EventTypeWarning, reason, message)
}

// NodeWarning records a Warning Event on the agent's Node (the caller
// logs). Like the kubelet's, its reference carries the node's name as UID.
func (r *Recorder) NodeWarning(reason, message string) {
	r.event(corev1.ObjectReference{Kind: "Node", Name: r.node, UID: types.UID(r.node)}, corev1.EventTypeWarning, reason, message)
}

// NodeConfigEvent records an Event on the node's NodeConfig (uid from the
// informer's copy; the caller logs). A cluster-scoped object's Events go to
// the default namespace, where `kubectl describe nc` finds them.
func (r *Recorder) NodeConfigEvent(uid, eventType, reason, message string) {
	r.event(corev1.ObjectReference{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.NodeConfigKind, Name: r.node, UID: types.UID(uid)},
		eventType, reason, message)
}

// event queues an Event for the worker, never blocking.
func (r *Recorder) event(ref corev1.ObjectReference, eventType, reason, message string) {
	select {
	case r.queue <- eventKey{ref, eventType, reason, message}:
	default:
		r.log.Debug("event queue full; event dropped", "object", ref.Kind+" "+ref.Namespace+"/"+ref.Name, "reason", reason)
	}
}

// Shutdown stops the worker; Events not yet written are dropped.
func (r *Recorder) Shutdown() {
	r.stop()
	<-r.done
}

func (r *Recorder) run(ctx context.Context) {
	defer close(r.done)
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-r.queue:
			if err := r.write(ctx, p); err != nil && ctx.Err() == nil {
				r.log.Warn("write event", "object", p.ref.Kind+" "+p.ref.Namespace+"/"+p.ref.Name, "reason", p.reason, "err", err)
			}
		}
	}
}

// write creates the Event, or bumps the count of the same one written
// within the aggregation window, unless the object's budget is spent.
func (r *Recorder) write(ctx context.Context, p eventKey) error {
	now := time.Now()
	if len(r.written) >= eventCache || len(r.budget) >= eventCache {
		r.forget(now)
	}
	if !r.allow(p.ref, now) {
		return nil
	}
	if w, ok := r.written[p]; ok && now.Sub(w.last) < EventAggregateWindow {
		patch, err := json.Marshal(map[string]any{"count": w.count + 1, "lastTimestamp": metav1.NewTime(now)})
		if err != nil {
			return err
		}
		err = r.client.Patch(ctx, apiclient.Events, w.namespace, w.name, types.MergePatchType, patch, &corev1.Event{})
		if err == nil {
			w.count++
			w.last = now
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return err
		}
		// The Event expired (the API server keeps them an hour): write
		// it anew.
	}
	ns := p.ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	ts := metav1.NewTime(now)
	ev := &corev1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", p.ref.Name, now.UnixNano()), Namespace: ns},
		InvolvedObject:      p.ref,
		Reason:              p.reason,
		Message:             p.msg,
		Type:                p.eventType,
		Source:              corev1.EventSource{Component: "flock-agent", Host: r.node},
		FirstTimestamp:      ts,
		LastTimestamp:       ts,
		Count:               1,
		ReportingController: "flock-agent",
		ReportingInstance:   "flock-agent-" + r.node,
	}
	if err := r.client.Create(ctx, apiclient.Events, ns, ev, &corev1.Event{}); err != nil {
		return err
	}
	r.written[p] = &writtenEvent{namespace: ns, name: ev.Name, count: 1, last: now}
	return nil
}

// allow takes one of the object's tokens: EventBurst, refilled at one per
// EventRefill.
func (r *Recorder) allow(ref corev1.ObjectReference, now time.Time) bool {
	b, ok := r.budget[ref]
	if !ok {
		b = &tokens{left: EventBurst, at: now}
		r.budget[ref] = b
	}
	b.left = min(EventBurst, b.left+float64(now.Sub(b.at))/float64(EventRefill))
	b.at = now
	if b.left < 1 {
		return false
	}
	b.left--
	return true
}

// forget drops the Events past the aggregation window and the budgets
// refilled to the full burst (a new one is the same); what is still too
// many starts over.
func (r *Recorder) forget(now time.Time) {
	for k, w := range r.written {
		if now.Sub(w.last) >= EventAggregateWindow {
			delete(r.written, k)
		}
	}
	for k, b := range r.budget {
		if now.Sub(b.at) >= EventBurst*EventRefill {
			delete(r.budget, k)
		}
	}
	if len(r.written) >= eventCache {
		clear(r.written)
	}
	if len(r.budget) >= eventCache {
		clear(r.budget)
	}
}
