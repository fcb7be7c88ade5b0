package kube

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/fritzlab/flock/pkg/model"
)

func TestRecorder(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client := fake.NewClientset()
	var logs bytes.Buffer
	r := NewRecorder(ctx, client, "node-1", slog.New(slog.NewTextHandler(&logs, nil)))
	defer r.Shutdown()

	msg := `flock.fritzlab.net/ipv4 "maybe": not true or false; using the default`
	r.PodWarning(&model.Pod{Namespace: "demo", Name: "web", UID: "u1"}, "FlockAnnotation", msg)

	var ev corev1.Event
	eventually(t, "event", func() bool {
		l, err := client.CoreV1().Events("demo").List(ctx, metav1.ListOptions{})
		if err != nil || len(l.Items) == 0 {
			return false
		}
		ev = l.Items[0]
		return true
	})
	o := ev.InvolvedObject
	if o.Kind != "Pod" || o.APIVersion != "v1" || o.Namespace != "demo" || o.Name != "web" || o.UID != "u1" {
		t.Errorf("involvedObject = %+v", o)
	}
	if ev.Type != corev1.EventTypeWarning || ev.Reason != "FlockAnnotation" || ev.Message != msg {
		t.Errorf("event = %s %s %q", ev.Type, ev.Reason, ev.Message)
	}
	if ev.Source.Component != "flock-agent" || ev.Source.Host != "node-1" {
		t.Errorf("source = %+v", ev.Source)
	}
	if l := logs.String(); !strings.Contains(l, "pod=demo/web") || !strings.Contains(l, "reason=FlockAnnotation") {
		t.Errorf("log = %q", l)
	}
}

// An Event on the node's NodeConfig lands in the default namespace (the
// NodeConfig is cluster-scoped), tied to its UID.
func TestRecorderNodeConfigEvent(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client := fake.NewClientset()
	r := NewRecorder(ctx, client, "node-1", slog.New(slog.DiscardHandler))
	defer r.Shutdown()
	r.NodeConfigEvent("uid-1", corev1.EventTypeNormal, "PoolDrained", "no pod holds an address in the former pool(s) 10.0.0.0/24 any more")
	var ev corev1.Event
	eventually(t, "event", func() bool {
		l, err := client.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{})
		if err != nil || len(l.Items) == 0 {
			return false
		}
		ev = l.Items[0]
		return true
	})
	o := ev.InvolvedObject
	if o.Kind != "NodeConfig" || o.APIVersion != "flock.fritzlab.net/v1alpha1" || o.Name != "node-1" || o.UID != "uid-1" {
		t.Errorf("involvedObject = %+v", o)
	}
	if ev.Type != corev1.EventTypeNormal || ev.Reason != "PoolDrained" {
		t.Errorf("event = %s %s %q", ev.Type, ev.Reason, ev.Message)
	}
}
