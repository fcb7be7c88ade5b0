package leaderterm

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10s", what)
		}
	}
}

// A pass runs once the caches synced, on an add, on an update Changed
// lets through (not on one it filters), and a second after a failed one.
func TestRun(t *testing.T) {
	kube := fake.NewClientset()
	f := informers.NewSharedInformerFactory(kube, 0)
	svcs := f.Core().V1().Services().Informer()
	var passes atomic.Int32
	var fail atomic.Bool
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Name: "test", Informers: []cache.SharedIndexInformer{svcs}, Factories: []Factory{f},
			Changed: func(old, cur any) bool {
				return old.(*corev1.Service).Spec.Type != cur.(*corev1.Service).Spec.Type
			},
			Resync: time.Hour, Log: slog.New(slog.DiscardHandler),
			Pass: func(context.Context) error {
				passes.Add(1)
				if fail.Load() {
					return errors.New("write failed")
				}
				return nil
			},
		})
	}()
	eventually(t, "the first pass", func() bool { return passes.Load() == 1 })
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}}
	svc, err := kube.CoreV1().Services("ns").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a pass on the add", func() bool { return passes.Load() == 2 })

	svc.Labels = map[string]string{"a": "b"} // filtered out
	if svc, err = kube.CoreV1().Services("ns").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the update in the cache", func() bool {
		o, ok, _ := svcs.GetStore().GetByKey("ns/s")
		return ok && o.(*corev1.Service).Labels["a"] == "b"
	})
	time.Sleep(100 * time.Millisecond)
	if n := passes.Load(); n != 2 {
		t.Fatalf("%d passes after a filtered update, want 2", n)
	}

	fail.Store(true)
	svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	if _, err = kube.CoreV1().Services("ns").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a pass on the update and its retries", func() bool { return passes.Load() >= 4 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

func TestCompareAge(t *testing.T) {
	at := func(name string, sec int64) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.Unix(sec, 0)}}
	}
	got := []*corev1.Service{at("c", 2), at("b", 1), at("a", 2), at("z", 0)}
	slices.SortFunc(got, func(a, b *corev1.Service) int { return CompareAge(a, b) })
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
	}
	if want := []string{"z", "b", "a", "c"}; !slices.Equal(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
}
