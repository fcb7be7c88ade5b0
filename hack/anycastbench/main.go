// Command anycastbench measures Ready-gated anycast in flock-lab: one
// node's only pod serving an anycast address is flipped between Ready and
// NotReady 20 times through its readiness probe, and each time the delay
// from the Ready condition changing in the API to the address leaving or
// reaching the upstream router's kernel table is measured. Its last line is
//
//	anycast_withdraw_p99_ms=<n> anycast_announce_p99_ms=<n>
//
// Run it as root: `make bench-anycast`. It starts and removes a lab of its own.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/hack/internal/benchlab"
	"github.com/fritzlab/flock/internal/lab"
)

const addr = "2001:db8:ffff::80"

func main() { benchlab.Main("anycastbench", "ab", run) }

func run(ctx context.Context, l *lab.Lab, dir string) error {
	cs, err := kubernetes.NewForConfig(l.ControlPlane().RESTConfig())
	if err != nil {
		return err
	}
	down := filepath.Join(dir, "down")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "svc", Namespace: "default", Annotations: map[string]string{"flock.fritzlab.net/anycast": addr}},
		Spec: corev1.PodSpec{NodeName: l.Nodes[0].Name, Containers: []corev1.Container{{
			Name: "serve", Image: "flock-lab", Command: []string{"flock-lab", "serve", "--tcp", "8080"},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "test ! -e " + down}}},
				PeriodSeconds: 1,
			},
		}}},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return err
	}
	routed := func() bool { return benchlab.RouterHas(l, addr) }
	if err := benchlab.WaitState(ctx, "pod default/svc", podReady(cs), true, routed, 90*time.Second, nil); err != nil {
		return err
	}
	var withdraw, announce []time.Duration
	for range 20 {
		os.WriteFile(down, nil, 0o644)
		if err := benchlab.WaitState(ctx, "pod default/svc", podReady(cs), false, routed, 30*time.Second, &withdraw); err != nil {
			return err
		}
		os.Remove(down)
		if err := benchlab.WaitState(ctx, "pod default/svc", podReady(cs), true, routed, 30*time.Second, &announce); err != nil {
			return err
		}
	}
	w50, w99 := benchlab.Percentiles(withdraw)
	a50, a99 := benchlab.Percentiles(announce)
	fmt.Printf("Ready change in the API -> router kernel, 20 flips: withdraw p50 %s p99 %s, announce p50 %s p99 %s\n",
		benchlab.Ms(w50), benchlab.Ms(w99), benchlab.Ms(a50), benchlab.Ms(a99))
	fmt.Printf("anycast_withdraw_p99_ms=%d anycast_announce_p99_ms=%d\n", w99.Milliseconds(), a99.Milliseconds())
	return nil
}

// podReady reads the pod's Ready condition in the API.
func podReady(cs kubernetes.Interface) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "svc", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return isReady(p), nil
	}
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
