package kube

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/pkg/annotations"
	"github.com/fritzlab/flock/pkg/kube/apiclient"
	"github.com/fritzlab/flock/pkg/model"
)

// Pods serves the metadata of the pods on one node from an informer that
// lists only that node's pods and keeps only what flock uses of each.
type Pods struct {
	node   string
	client apiclient.Interface
	inf    cache.SharedIndexInformer
}

// NewPods builds the informer for node's pods; nothing runs until Run.
func NewPods(client apiclient.Interface, node string) *Pods {
	onNode := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	}
	inf := cache.NewSharedIndexInformer(client.ListWatch(apiclient.Pods, metav1.NamespaceAll, onNode), &corev1.Pod{}, 0, cache.Indexers{})
	// The error is only for an informer that already runs.
	_ = inf.SetTransform(StripPod)
	return &Pods{node: node, client: client, inf: inf}
}

// cached is a pod from the cache, nil when the cache does not hold it.
func (p *Pods) cached(namespace, name string) (*corev1.Pod, error) {
	obj, ok, err := p.inf.GetStore().GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil, err
	}
	pod, _ := obj.(*corev1.Pod)
	return pod, nil
}

// Run runs the informer until ctx ends.
func (p *Pods) Run(ctx context.Context) { p.inf.RunWithContext(ctx) }

// HasSynced reports whether the informer has listed once.
func (p *Pods) HasSynced() bool { return p.inf.HasSynced() }

// Pod returns a pod's metadata from the cache. The runtime can call ADD
// for a pod before its watch event reached the cache, and a pod deleted and
// re-created under the same name can still be the old one there; both fall
// back to a GET from the API server.
func (p *Pods) Pod(ctx context.Context, namespace, name string) (*model.Pod, error) {
	pod, err := p.cached(namespace, name)
	if err != nil {
		return nil, fmt.Errorf("read pod %s/%s from cache: %w", namespace, name, err)
	}
	if pod != nil && pod.DeletionTimestamp == nil {
		return podFromObject(pod), nil
	}
	pod = &corev1.Pod{}
	err = p.client.Get(ctx, apiclient.Pods, namespace, name, pod)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("pod %s/%s: %w", namespace, name, model.ErrPodNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get pod %s/%s: %w", namespace, name, err)
	}
	return podFromObject(pod), nil
}

// podFromObject is the one place a Kubernetes pod becomes flock's model.
func podFromObject(pod *corev1.Pod) *model.Pod {
	return &model.Pod{
		Namespace:   pod.Namespace,
		Name:        pod.Name,
		UID:         string(pod.UID),
		Annotations: flockAnnotations(pod.Annotations),
	}
}

// StripPod is the pod informer's transform: it keeps what flock uses
// (identity, flock's annotations, node, addresses, phase, readiness,
// deletion) and drops the rest (specs, managed fields, other annotations
// such as kubectl's last-applied copy), so the cache of a busy node stays
// small.
func StripPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone holds an already stripped pod
	}
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:              pod.Name,
			Namespace:         pod.Namespace,
			UID:               pod.UID,
			ResourceVersion:   pod.ResourceVersion,
			DeletionTimestamp: pod.DeletionTimestamp,
			Annotations:       flockAnnotations(pod.Annotations),
		},
		Spec:   corev1.PodSpec{NodeName: pod.Spec.NodeName},
		Status: corev1.PodStatus{Phase: pod.Status.Phase, PodIPs: pod.Status.PodIPs},
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			out.Status.Conditions = []corev1.PodCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return out, nil
}

// flockAnnotations copies the annotations flock reads.
func flockAnnotations(in map[string]string) map[string]string {
	var out map[string]string
	for k, v := range in {
		if strings.HasPrefix(k, annotations.Prefix) {
			if out == nil {
				out = make(map[string]string)
			}
			out[k] = v
		}
	}
	return out
}

// PodReady reports whether a pod of this node is Ready in the cache; a pod
// the cache does not know, or one being deleted, is not.
func (p *Pods) PodReady(namespace, name string) bool {
	pod, err := p.cached(namespace, name)
	return err == nil && pod != nil && podReady(pod)
}

// podReady reports whether a pod is Ready and not being deleted.
func podReady(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ReadyChanges is poked (one slot, never blocking) whenever a pod of this
// node appears, disappears or changes readiness: the anycast reconciler
// then runs at once instead of at its next tick.
func (p *Pods) ReadyChanges() <-chan struct{} {
	ch := make(chan struct{}, 1)
	ready := func(obj any) bool {
		pod, ok := obj.(*corev1.Pod)
		return ok && podReady(pod)
	}
	_, _ = p.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { poke(ch) },
		UpdateFunc: func(old, cur any) {
			if ready(old) != ready(cur) {
				poke(ch)
			}
		},
		DeleteFunc: func(any) { poke(ch) },
	})
	return ch
}
