// Package lab runs flock end to end in flock-lab: a real kube-apiserver and
// etcd, node namespaces with the real agent and kubelet-lite, pods created
// through the API and wired by the real CNI plugin. Root only.
package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/internal/lab"
)

type env struct {
	t   *testing.T
	lab *lab.Lab
	cs  kubernetes.Interface
}

// up starts a lab of its own (namespaces and directories named after this
// process, so a real lab or a parallel run is never touched) and tears it
// down when the test ends, on the lab's default runtime (the real node
// stack); $FLOCK_LAB_RUNTIME=lite runs every test that uses it on
// kubelet-lite instead.
func up(t *testing.T, nodes int) *env {
	t.Helper()
	return upWith(t, nodes, os.Getenv("FLOCK_LAB_RUNTIME"))
}

// upWith is up on the given runtime (lab.RuntimeLite or lab.RuntimeReal).
func upWith(t *testing.T, nodes int, runtime string) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab creates network namespaces")
	}
	dir := t.TempDir()
	opts := lab.Options{
		Nodes:    nodes,
		Prefix:   fmt.Sprintf("flk-e2e%d", os.Getpid()),
		RunDir:   filepath.Join(dir, "run"),
		StateDir: filepath.Join(dir, "state"),
		Log:      testWriter{t},
		Runtime:  runtime,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, opts)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(opts.RunDir, "logs", "*"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				t.Logf("==> %s (last 3000 bytes)\n%s", f, tail(b, 3000))
			}
		}
		if err := lab.Down(context.Background(), opts); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	cs, err := kubernetes.NewForConfig(l.ControlPlane().RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, lab: l, cs: cs}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// servePod is a pod running flock-lab serve on TCP and UDP port, Ready once
// its TCP port answers.
func servePod(namespace, name string, annotations map[string]string, port int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:    "serve",
				Image:   "flock-lab",
				Command: []string{"flock-lab", "serve", "--tcp", fmt.Sprint(port), "--udp", fmt.Sprint(port)},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(port)}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
}

func (e *env) create(p *corev1.Pod) {
	e.t.Helper()
	if _, err := e.cs.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create pod %s/%s: %v", p.Namespace, p.Name, err)
	}
}

// waitReady waits until the pod is Ready with its addresses and returns it.
func (e *env) waitReady(namespace, name string) *corev1.Pod {
	e.t.Helper()
	var last *corev1.Pod
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		p, err := e.cs.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			last = p
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && len(p.Status.PodIPs) > 0 {
					return p
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatalf("pod %s/%s not Ready within 60s: %+v", namespace, name, last)
	return nil
}

// deleteAndWait deletes a pod and waits until the object is gone.
func (e *env) deleteAndWait(namespace, name string) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.cs.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatalf("delete pod %s/%s: %v", namespace, name, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := e.cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatalf("pod %s/%s still exists 60s after delete", namespace, name)
}

func podAddrs(p *corev1.Pod) (v6, v4 netip.Addr) {
	for _, ip := range p.Status.PodIPs {
		a := netip.MustParseAddr(ip.IP)
		if a.Is4() {
			v4 = a
		} else {
			v6 = a
		}
	}
	return v6, v4
}

// setFile creates (or removes) a file as the pod's containers see it: on
// the host for kubelet-lite, whose containers are host processes; inside
// the pod's container through the CRI on the real runtime.
func (e *env) setFile(pod *corev1.Pod, path string, present bool) {
	e.t.Helper()
	if !e.lab.Real() {
		if present {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				e.t.Fatal(err)
			}
		} else if err := os.Remove(path); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	script := "mkdir -p " + filepath.Dir(path) + " && touch " + path
	if !present {
		script = "rm " + path
	}
	_, stderr, code, err := e.lab.Exec(context.Background(), pod.Namespace, pod.Name, "", []string{"sh", "-c", script})
	if err != nil || code != 0 {
		e.t.Fatalf("in %s/%s: %s: exit %d %v %s", pod.Namespace, pod.Name, script, code, err, stderr)
	}
}

// inNetns runs a command in a named network namespace.
func inNetns(netns string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command("ip", append([]string{"netns", "exec", netns}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// tcpAsk connects from a pod to addr:port and returns what the server said.
func (e *env) tcpAsk(from *corev1.Pod, addr netip.Addr, port int) (string, error) {
	ns, err := e.lab.PodNetns(context.Background(), from.Namespace, from.Name)
	if err != nil {
		return "", err
	}
	out, err := inNetns(ns, "nc", "-w", "3", addr.String(), fmt.Sprint(port))
	return strings.TrimSpace(out), err
}

// netnsList returns the machine's named network namespaces whose name
// starts with prefix (other tests may run beside this one).
func netnsList(prefix string) []string {
	entries, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// rootLinks returns the interfaces of the machine's own namespace.
func rootLinks() string {
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, f[1])
		}
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}

// labProcesses lists the processes whose command line names one of the
// lab's directories or namespaces: everything a lab starts does.
func labProcesses(marks ...string) []string {
	var out []string
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		for _, m := range marks {
			if m != "" && strings.Contains(cmdline, m) {
				out = append(out, filepath.Base(filepath.Dir(f))+": "+cmdline)
				break
			}
		}
	}
	return out
}

var metav1PatchOptions = metav1.PatchOptions{FieldManager: "flock-e2e"}

func (e *env) dyn() dynamic.Interface {
	d, err := dynamic.NewForConfig(e.lab.ControlPlane().RESTConfig())
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
