package kube

import (
	"context"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/model"
)

// Recorder reports a pod's annotation problems in the agent's log and as a
// Warning Event on the pod, where `kubectl describe pod` shows them.
type Recorder struct {
	node  string
	log   *slog.Logger
	bcast record.EventBroadcaster
	rec   record.EventRecorder
}

// NewRecorder starts an event broadcaster that writes core/v1 Events as
// component flock-agent on node. The broadcaster rate-limits and
// aggregates repeats, so a pod retried in a loop does not flood the API.
func NewRecorder(ctx context.Context, client kubernetes.Interface, node string, log *slog.Logger) *Recorder {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return &Recorder{
		node:  node,
		log:   log,
		bcast: b,
		rec:   b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "flock-agent", Host: node}),
	}
}

// PodWarning logs a warning about a pod and records it as an Event on it.
func (r *Recorder) PodWarning(pod *model.Pod, reason, message string) {
	r.log.Warn(message, "pod", pod.Key(), "reason", reason)
	// The Event only needs the pod's identity; the UID ties it to this
	// incarnation of the pod, which is how `kubectl describe` finds it.
	ref := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: types.UID(pod.UID)}}
	r.rec.Event(ref, corev1.EventTypeWarning, reason, message)
}

// NodeWarning records a Warning Event on the agent's Node (the caller
// logs). Like the kubelet's, its reference carries the node's name as UID.
func (r *Recorder) NodeWarning(reason, message string) {
	ref := &corev1.ObjectReference{Kind: "Node", Name: r.node, UID: types.UID(r.node)}
	r.rec.Event(ref, corev1.EventTypeWarning, reason, message)
}

// NodeConfigEvent records an Event on the node's NodeConfig (uid from the
// informer's copy; the caller logs). A cluster-scoped object's Events go to
// the default namespace, where `kubectl describe nc` finds them.
func (r *Recorder) NodeConfigEvent(uid, eventType, reason, message string) {
	ref := &corev1.ObjectReference{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.NodeConfigKind, Name: r.node, UID: types.UID(uid)}
	r.rec.Event(ref, eventType, reason, message)
}

// Shutdown stops the broadcaster; Events not yet written are dropped.
func (r *Recorder) Shutdown() { r.bcast.Shutdown() }
