package kube

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/pkg/kube/apiclient/apiclientfake"
	"github.com/fritzlab/flock/pkg/model"
)

func TestRecorder(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client := apiclientfake.New()
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
	client := apiclientfake.New()
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

// A warning repeated bumps the count of one Event; past EventBurst Events
// on one object the rest are dropped until the budget refills.
func TestRecorderAggregatesAndLimits(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	client := apiclientfake.New()
	r := NewRecorder(ctx, client, "node-1", slog.New(slog.DiscardHandler))
	defer r.Shutdown()
	events := func() []corev1.Event {
		l, err := client.CoreV1().Events("demo").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	pod := &model.Pod{Namespace: "demo", Name: "web", UID: "u1"}
	for range 3 {
		r.PodWarning(pod, "FlockAnnotation", "same")
	}
	eventually(t, "one event counted 3 times", func() bool {
		l := events()
		return len(l) == 1 && l[0].Count == 3
	})

	other := &model.Pod{Namespace: "demo", Name: "db", UID: "u2"}
	for i := range EventBurst + 10 {
		r.PodWarning(other, "FlockAnnotation", fmt.Sprintf("message %d", i))
	}
	r.PodWarning(pod, "FlockAnnotation", "web has its own budget")
	eventually(t, "web's second event", func() bool { return len(events()) == 2+EventBurst })
	time.Sleep(100 * time.Millisecond)
	if n := len(events()); n != 2+EventBurst {
		t.Errorf("%d events, want %d: db's beyond its burst of %d must be dropped", n, 2+EventBurst, EventBurst)
	}
}
