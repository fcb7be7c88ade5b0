// Command podbench is `make bench-pods`: on a one-node lab with the real
// node stack (kubelet, containerd), 100 pods created at once, timed from the
// create calls to all Ready, then deleted at once, timed to no pod in the
// API and no pod veth on the node. First with flock, then with the reference
// ptp + host-local plugins (containernetworking/plugins v1.10.0) in the same
// containerd (its CNI config swapped), in the same run. The last line is
// `pods_ready_wall_ratio=<flock/ref> pods_delete_wall_ratio=<flock/ref> ready_p99_ms=<flock's>`.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/hack/internal/benchlab"
	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/internal/lab"
	"github.com/fritzlab/flock/internal/lab/topology"
)

const pods = 100

func main() {
	benchlab.MainWith("podbench", "pb", lab.Options{Nodes: 1, Runtime: lab.RuntimeReal}, measure)
}

type result struct {
	name          string
	ready, delete time.Duration
	readyP50      time.Duration
	readyP99      time.Duration
}

func measure(ctx context.Context, l *lab.Lab, dir string) error {
	cs, err := kubernetes.NewForConfig(l.ControlPlane().RESTConfig())
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "ref-bin")
	if err := cnitest.BuildBinaries(bin); err != nil {
		return err
	}
	for _, p := range []string{"ptp", "host-local"} {
		if out, err := exec.Command("cp", filepath.Join(bin, p), l.BinDir).CombinedOutput(); err != nil {
			return fmt.Errorf("install %s: %v %s", p, err, out)
		}
	}
	node := l.Nodes[0]
	flock, err := os.ReadFile(node.CNIConfList)
	if err != nil {
		return err
	}
	fl, err := run(ctx, cs, l, "flock")
	if err != nil {
		return err
	}
	ref, err := json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0", "name": "ref",
		"plugins": []any{map[string]any{
			"type": "ptp", "ipMasq": false, "mtu": 1500,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": filepath.Join(dir, "host-local"),
				"ranges": []any{
					[]any{map[string]any{"subnet": node.Pool6.String()}},
					[]any{map[string]any{"subnet": node.Pool4.String()}},
				},
				"routes": []any{map[string]any{"dst": "0.0.0.0/0"}, map[string]any{"dst": "::/0"}},
			},
		}},
	}, "", "  ")
	if err != nil {
		return err
	}
	// containerd's CRI watches its CNI config dir and reloads.
	if err := os.WriteFile(node.CNIConfList, ref, 0o644); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	rf, err := run(ctx, cs, l, "ptp+host-local")
	os.WriteFile(node.CNIConfList, flock, 0o644)
	if err != nil {
		return err
	}
	fmt.Printf("%-16s %12s %12s %12s %12s\n", "plugin", "ready_wall", "ready_p50", "ready_p99", "delete_wall")
	for _, r := range []result{fl, rf} {
		fmt.Printf("%-16s %12s %12s %12s %12s\n", r.name, benchlab.Ms(r.ready), benchlab.Ms(r.readyP50), benchlab.Ms(r.readyP99), benchlab.Ms(r.delete))
	}
	fmt.Printf("pods_ready_wall_ratio=%.3f pods_delete_wall_ratio=%.3f ready_p99_ms=%.0f\n",
		float64(fl.ready)/float64(rf.ready), float64(fl.delete)/float64(rf.delete), float64(fl.readyP99)/float64(time.Millisecond))
	return nil
}

func pod(i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("bench-%d", i), Labels: map[string]string{"app": "podbench"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "serve", Image: "lab", Command: []string{"flock-lab", "serve", "--tcp", "8080"},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(8080)}},
					PeriodSeconds: 1,
				},
			}},
			TerminationGracePeriodSeconds: new(int64(1)),
		},
	}
}

// run creates the pods at once, waits for all Ready, deletes them at once
// and waits until the API and the node have none left.
func run(ctx context.Context, cs kubernetes.Interface, l *lab.Lab, name string) (result, error) {
	r := result{name: name}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, pods)
	for i := range pods {
		wg.Go(func() {
			if _, err := cs.CoreV1().Pods("default").Create(ctx, pod(i), metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return r, fmt.Errorf("%s: create: %w", name, err)
	}
	readyAt := map[string]time.Duration{}
	deadline := time.Now().Add(10 * time.Minute)
	for len(readyAt) < pods {
		if time.Now().After(deadline) {
			return r, fmt.Errorf("%s: %d of %d pods Ready after 10 minutes", name, len(readyAt), pods)
		}
		list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=podbench"})
		if err != nil {
			return r, err
		}
		for _, p := range list.Items {
			if _, seen := readyAt[p.Name]; !seen && ready(&p) {
				readyAt[p.Name] = time.Since(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.ready = time.Since(start)
	// The plugin measured is the one containerd ran: flock's veths are
	// flock<hex>, ptp's veth<hex>.
	out, _ := exec.Command("ip", "-n", l.Nodes[0].Netns, "-o", "link", "show", "type", "veth").Output()
	flockVeths := strings.Count(string(out), ": flock")
	if want := map[bool]int{true: pods, false: 0}[name == "flock"]; flockVeths != want {
		return r, fmt.Errorf("%s: %d flock veths with %d pods Ready, want %d", name, flockVeths, pods, want)
	}
	var each []time.Duration
	for _, d := range readyAt {
		each = append(each, d)
	}
	r.readyP50, r.readyP99 = benchlab.Percentiles(each)

	start = time.Now()
	if err := cs.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app=podbench"}); err != nil {
		return r, fmt.Errorf("%s: delete: %w", name, err)
	}
	netns := l.Nodes[0].Netns
	for {
		if time.Since(start) > 10*time.Minute {
			return r, fmt.Errorf("%s: pods or veths left 10 minutes after the delete", name)
		}
		list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=podbench"})
		if err != nil {
			return r, err
		}
		out, _ := exec.Command("ip", "-n", netns, "-o", "link", "show", "type", "veth").Output()
		veths := 0
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" && !strings.Contains(line, " "+topology.UplinkName+"@") {
				veths++
			}
		}
		if len(list.Items) == 0 && veths == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.delete = time.Since(start)
	return r, nil
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
