package kube

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fritzlab/flock/pkg/kube/apiclient/apiclientfake"
	"github.com/fritzlab/flock/pkg/model"
)

func TestStripPod(t *testing.T) {
	now := metav1.Now()
	in := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: "demo", UID: "u1", ResourceVersion: "42", DeletionTimestamp: &now,
			Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{
				"flock.fritzlab.net/ipv4":                          "false",
				"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096),
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "2001:db8::1",
			PodIPs: []corev1.PodIP{{IP: "2001:db8::1"}, {IP: "198.18.1.2"}},
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, Reason: "r", LastTransitionTime: now},
			},
		},
	}
	got, err := StripPod(in)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: "demo", UID: "u1", ResourceVersion: "42", DeletionTimestamp: &now,
			Annotations: map[string]string{"flock.fritzlab.net/ipv4": "false"},
		},
		Spec: corev1.PodSpec{NodeName: "node-1"},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIPs:     []corev1.PodIP{{IP: "2001:db8::1"}, {IP: "198.18.1.2"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("StripPod (-want +got):\n%s", d)
	}
	// A tombstone passes through untouched.
	if s := "not a pod"; func() any { o, _ := StripPod(s); return o }() != s {
		t.Error("StripPod changed a non-pod")
	}
}

func pod(ns, name, uid string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), Annotations: ann},
		Spec:       corev1.PodSpec{NodeName: "node-1"},
	}
}

func TestPodLookup(t *testing.T) {
	ctx := context.Background()
	client := apiclientfake.New(
		pod("demo", "api", "api-uid", map[string]string{"flock.fritzlab.net/ip-algo": "hash", "other": "x"}),
		pod("demo", "again", "new-uid", nil),
	)
	// The informer does not run: what is in the cache is what the test
	// puts there, so the GET fallback is what answers the rest.
	p := NewPods(client, "node-1")
	cached, _ := StripPod(pod("demo", "web", "web-uid", map[string]string{"flock.fritzlab.net/ipv6": "true"}))
	now := metav1.Now()
	old := pod("demo", "again", "old-uid", nil)
	old.DeletionTimestamp = &now
	for _, o := range []any{cached, old} {
		if err := p.inf.GetIndexer().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		ns, name string
		want     *model.Pod
		gets     int
	}{
		{"demo", "web", &model.Pod{Namespace: "demo", Name: "web", UID: "web-uid", Annotations: map[string]string{"flock.fritzlab.net/ipv6": "true"}}, 0},
		// Not in the cache yet (the ADD beat the watch event).
		{"demo", "api", &model.Pod{Namespace: "demo", Name: "api", UID: "api-uid", Annotations: map[string]string{"flock.fritzlab.net/ip-algo": "hash"}}, 1},
		// The cache still has the deleted pod of the same name.
		{"demo", "again", &model.Pod{Namespace: "demo", Name: "again", UID: "new-uid"}, 1},
	} {
		client.ClearActions()
		got, err := p.Pod(ctx, tc.ns, tc.name)
		if err != nil {
			t.Errorf("%s/%s: %v", tc.ns, tc.name, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s/%s (-want +got):\n%s", tc.ns, tc.name, d)
		}
		if n := len(client.Actions()); n != tc.gets {
			t.Errorf("%s/%s: %d API calls, want %d", tc.ns, tc.name, n, tc.gets)
		}
	}
	_, err := p.Pod(ctx, "demo", "gone")
	if !errors.Is(err, model.ErrPodNotFound) || !strings.Contains(err.Error(), "demo/gone") {
		t.Errorf("missing pod: %v, want ErrPodNotFound naming demo/gone", err)
	}
}

// TestPodsInformer runs the informer: a pod created after the start is
// served from the cache without a GET.
func TestPodsInformer(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client := apiclientfake.New()
	p := NewPods(client, "node-1")
	go p.Run(ctx)
	eventually(t, "sync", p.HasSynced)
	if _, err := client.CoreV1().Pods("demo").Create(ctx, pod("demo", "web", "u1", map[string]string{"flock.fritzlab.net/ipv4": "false"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod in cache", func() bool { pod, err := p.cached("demo", "web"); return err == nil && pod != nil })
	client.ClearActions()
	got, err := p.Pod(ctx, "demo", "web")
	if err != nil || got.UID != "u1" || got.Annotations["flock.fritzlab.net/ipv4"] != "false" {
		t.Fatalf("Pod = %+v, %v", got, err)
	}
	if a := client.Actions(); len(a) != 0 {
		t.Errorf("cached pod cost API calls: %v", a)
	}
	obj, _, _ := p.inf.GetIndexer().GetByKey("demo/web")
	if obj.(*corev1.Pod).Spec.NodeName != "node-1" || obj.(*corev1.Pod).ManagedFields != nil {
		t.Errorf("cache holds an unstripped pod: %+v", obj)
	}
}
