package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/controlplane/controlplanetest"
	"github.com/fritzlab/flock/internal/testns"
	"github.com/fritzlab/flock/pkg/bird/birdtest"
	"github.com/fritzlab/flock/pkg/kube"
)

// apiGate is the node's 127.0.0.1:6443, forwarded to the API server as
// forwardAPI does, that a test can close (every connection cut, new ones
// refused: the API server is unreachable from the node) and open again.
type apiGate struct {
	t      *testing.T
	nsPath string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newAPIGate(t *testing.T, nsPath, target string) *apiGate {
	g := &apiGate{t: t, nsPath: nsPath, target: target, conns: map[net.Conn]bool{}}
	g.open()
	t.Cleanup(g.close)
	return g
}

func (g *apiGate) open() {
	g.t.Helper()
	h, err := ns.GetNS(g.nsPath)
	if err != nil {
		g.t.Fatal(err)
	}
	defer h.Close()
	var ln net.Listener
	if err := h.Do(func(ns.NetNS) error {
		ln, err = net.Listen("tcp", "127.0.0.1:6443")
		return err
	}); err != nil {
		g.t.Fatal(err)
	}
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", g.target)
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			g.conns[c], g.conns[up] = true, true
			g.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

func (g *apiGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for c := range g.conns {
		c.Close()
	}
	g.conns = map[net.Conn]bool{}
}

// agentProc is a flock-agent the test stops and starts itself.
type agentProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// runAgent starts flock-agent in the node's namespace and waits for its
// CNI socket; stop it with stop (the test's end does too).
func runAgent(t *testing.T, node *cnitest.Node, args ...string) *agentProc {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(node.Dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(node.Socket)
	cmd := exec.Command("ip", append([]string{"netns", "exec", node.NS.Name, filepath.Join(node.BinDir, "flock-agent"),
		"--socket", node.Socket, "--state-dir", filepath.Join(node.Dir, "allocations"), "--log-level", "debug"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("agent log:\n%s", node.AgentLog())
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("flock-agent exited at start: %s", node.AgentLog())
		default:
		}
		if c, err := net.Dial("unix", node.Socket); err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's socket did not appear; log:\n%s", node.AgentLog())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *agentProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kubeNode is a node namespace whose agent reaches a real API server of
// the test's own through a gate.
type kubeNode struct {
	node       *cnitest.Node
	gate       *apiGate
	admin      kubernetes.Interface
	dyn        dynamic.Interface
	ncs        dynamic.ResourceInterface
	kubeconfig string
}

func newKubeNode(t *testing.T, ctx context.Context) *kubeNode {
	t.Helper()
	testns.RemoveLeftovers()
	cp, token := controlplanetest.StartWithAgent(t)
	k := &kubeNode{
		admin: kubernetes.NewForConfigOrDie(cp.RESTConfig()),
		dyn:   dynamic.NewForConfigOrDie(cp.RESTConfig()),
	}
	k.ncs = k.dyn.Resource(kube.NodeConfigResource)
	setup(t, ctx, k.admin)
	binDir := t.TempDir()
	if err := cnitest.BuildBinaries(binDir); err != nil {
		t.Fatal(err)
	}
	node, err := cnitest.NewNode(binDir, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	k.node = node
	k.gate = newAPIGate(t, node.NS.Path, strings.TrimPrefix(cp.Server, "https://"))
	k.kubeconfig = filepath.Join(node.Dir, "agent.kubeconfig")
	if err := controlplane.WriteKubeconfig(k.kubeconfig, "https://127.0.0.1:6443", cp.CAFile, token); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *kubeNode) nodeConfig(t *testing.T, ctx context.Context, spec map[string]any) {
	t.Helper()
	nc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flock.fritzlab.net/v1alpha1", "kind": "NodeConfig",
		"metadata": map[string]any{"name": "node-1"}, "spec": spec,
	}}
	if _, err := k.ncs.Create(ctx, nc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// pod creates a pod in the API and adds it through the plugin; it returns
// the pod, its runtime config and its netns.
func (k *kubeNode) pod(t *testing.T, ctx context.Context, name, container string, annotations map[string]string) (*corev1.Pod, *cnitest.Netns) {
	t.Helper()
	p, err := k.admin.CoreV1().Pods("demo").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name, Annotations: annotations},
		Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "ignored"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	podNS, err := cnitest.NewNetns("pod")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { podNS.Close() })
	list, err := k.node.FlockConflist("1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	rt := cnitest.Runtime(container, podNS.Path, "demo", name)
	rt.Args = append(rt.Args, [2]string{"K8S_POD_UID", string(p.UID)})
	var addErr error
	waitFor(t, "ADD of demo/"+name, func() bool {
		_, addErr = k.node.Add(ctx, list, rt)
		return addErr == nil
	})
	return p, podNS
}

// setReady sets the pod's Ready condition, as the kubelet does.
func (k *kubeNode) setReady(t *testing.T, ctx context.Context, name string, ready bool) {
	t.Helper()
	p, err := k.admin.CoreV1().Pods("demo").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	if _, err := k.admin.CoreV1().Pods("demo").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	if d, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), d.Add(-10*time.Second))
	}
	t.Cleanup(cancel)
	return ctx
}

// TestRestartWithAPIDown (issue #15, item 3): an agent restarted while the
// API server is unreachable serves (after --sync-wait) but changes neither
// the anycast routes in the kernel nor what BIRD announces (a LoadBalancer
// Service address included), although its empty caches make every pod look
// not Ready and every Service gone; once the API server is back it
// reconciles (here: the pod went not Ready meanwhile, so its anycast
// address is withdrawn; the Service's endpoint is still Ready, so its
// address stays).
func TestRestartWithAPIDown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (as CI runs it): network namespaces, etcd and kube-apiserver")
	}
	if _, err := exec.LookPath("bird"); err != nil {
		t.Fatal("needs bird: apt-get install -y bird2 (CI installs it)")
	}
	ctx := testContext(t)
	k := newKubeNode(t, ctx)
	bn := startBirdNode(t, k.node)
	k.nodeConfig(t, ctx, map[string]any{
		"cidr6": "2001:db8:42:1::/64", "cidr4": "198.18.1.0/24",
		"bgp": map[string]any{"asn": int64(65101), "peers": []any{map[string]any{"address": birdtest.Router6, "asn": int64(65000)}}},
		// Without an allowlist no pod may claim anycast.
		"anycast": map[string]any{"allowedCIDRs": []any{"2001:db8:ffff::/48"}},
	})
	args := append([]string{"--kubeconfig", k.kubeconfig, "--node-name", "node-1", "--sync-wait", "2s"}, bn.AgentArgs()...)
	agent := runAgent(t, k.node, args...)
	const anycast = "2001:db8:ffff::53"
	k.pod(t, ctx, "web", "c0ffee11", map[string]string{"flock.fritzlab.net/anycast": anycast})
	k.setReady(t, ctx, "web", true)
	routed := func() string {
		out, _ := k.node.NS.Run("ip", "-6", "route", "show", "proto", "84")
		return out
	}
	announced := func() bool {
		conf, _ := os.ReadFile(bn.Config)
		return strings.Contains(string(conf), "route "+anycast+"/128 blackhole;")
	}
	lbService(t, ctx, k.admin, k.dyn, "2001:db8:5::10", "node-1")
	lbAnnounced := func() bool {
		conf, _ := os.ReadFile(bn.Config)
		return strings.Contains(string(conf), "route 2001:db8:5::10/128 blackhole")
	}
	waitFor(t, "the anycast route and its announcement, and the Service address's", func() bool {
		return strings.Contains(routed(), anycast) && announced() && lbAnnounced()
	})
	before, conf := routed(), mustRead(t, bn.Config)

	agent.stop()
	k.gate.close()
	k.setReady(t, ctx, "web", false) // the agent cannot see this yet
	agent = runAgent(t, k.node, args...)
	// Several of the reconciler's 2 s ticks, and the BGP controller's.
	time.Sleep(7 * time.Second)
	if got := routed(); got != before {
		t.Errorf("anycast routes changed while the API server was unreachable:\nbefore:\n%s\nafter:\n%s", before, got)
	}
	if got := mustRead(t, bn.Config); got != conf {
		t.Errorf("bird.conf changed while the API server was unreachable:\nbefore:\n%s\nafter:\n%s", conf, got)
	}
	if out, err := birdRoute(ctx, bn, anycast+"/128"); err != nil || !strings.Contains(out, anycast+"/128") {
		t.Errorf("bird no longer has the anycast route (%v):\n%s", err, out)
	}

	k.gate.open()
	waitFor(t, "the anycast address withdrawn once the API server is back", func() bool {
		return !strings.Contains(routed(), anycast) && !announced()
	})
	if !lbAnnounced() {
		t.Errorf("the Service address was withdrawn, though its endpoint is still Ready:\n%s", mustRead(t, bn.Config))
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// birdRoute asks BIRD for its route to prefix.
func birdRoute(ctx context.Context, bn *birdtest.Sidecar, prefix string) (string, error) {
	lines, err := bn.Client.Command(ctx, "show route "+prefix)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text + "\n")
	}
	return b.String(), err
}

// TestLeakSweep (issue #15, item 7): with a runtime that never calls DEL or
// GC, the agent releases an allocation once its pod is gone from the API
// and its netns is gone, and not while either is still there.
func TestLeakSweep(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (as CI runs it): network namespaces, etcd and kube-apiserver")
	}
	ctx := testContext(t)
	k := newKubeNode(t, ctx)
	k.nodeConfig(t, ctx, map[string]any{"cidr6": "2001:db8:42:1::/64", "cidr4": "198.18.1.0/24"})
	runAgent(t, k.node, "--kubeconfig", k.kubeconfig, "--node-name", "node-1", "--leak-sweep", "300ms", "--leak-sweep-grace", "1s")
	_, leakNS := k.pod(t, ctx, "leak", "c0ffee21", nil)
	_, keepNS := k.pod(t, ctx, "netns-kept", "c0ffee22", nil)
	_, goneNS := k.pod(t, ctx, "pod-kept", "c0ffee23", nil)
	allocations := func() int {
		m, _ := filepath.Glob(filepath.Join(k.node.Dir, "allocations", "*.json"))
		return len(m)
	}
	if n := allocations(); n != 3 {
		t.Fatalf("%d allocations after three ADDs", n)
	}
	zero := int64(0)
	for _, name := range []string{"leak", "netns-kept"} {
		if err := k.admin.CoreV1().Pods("demo").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	leakNS.Close()
	goneNS.Close()
	_ = keepNS
	waitFor(t, "the leaked allocation released", func() bool {
		return strings.Contains(k.node.AgentLog(), "leaked allocation released") && allocations() == 2
	})
	time.Sleep(2 * time.Second) // more sweeps: the other two stay
	if n := allocations(); n != 2 {
		t.Errorf("%d allocations left, want 2 (netns still there; pod still in the API)", n)
	}
	if log := k.node.AgentLog(); strings.Count(log, "leaked allocation released") != 1 || !strings.Contains(log, "pod=demo/leak") {
		t.Errorf("want one release line, for demo/leak; log:\n%s", log)
	}
}

// TestPoolDrain (issue #15, item 5): a pool change while a pod holds an
// address of the old pool keeps the old pool blackholed in the kernel and
// announced by BIRD, reports it in the NodeConfig's status.drainingPools
// and with a PoolDraining Event; the pod's DEL ends it all (PoolDrained).
func TestPoolDrain(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (as CI runs it): network namespaces, etcd and kube-apiserver")
	}
	if _, err := exec.LookPath("bird"); err != nil {
		t.Fatal("needs bird: apt-get install -y bird2 (CI installs it)")
	}
	ctx := testContext(t)
	k := newKubeNode(t, ctx)
	bn := startBirdNode(t, k.node)
	bgp := map[string]any{"asn": int64(65101), "peers": []any{map[string]any{"address": birdtest.Router6, "asn": int64(65000)}}}
	const old6, old4, new6, new4 = "2001:db8:42:1::/64", "198.18.1.0/24", "2001:db8:42:2::/64", "198.18.2.0/24"
	k.nodeConfig(t, ctx, map[string]any{"cidr6": old6, "cidr4": old4, "bgp": bgp})
	runAgent(t, k.node, append([]string{"--kubeconfig", k.kubeconfig, "--node-name", "node-1"}, bn.AgentArgs()...)...)
	_, podNS := k.pod(t, ctx, "old", "c0ffee31", nil)

	u, err := k.ncs.Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u.Object["spec"] = map[string]any{"cidr6": new6, "cidr4": new4, "bgp": bgp}
	if _, err := k.ncs.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	blackholes := func() string {
		out6, _ := k.node.NS.Run("ip", "-6", "route", "show", "type", "blackhole", "proto", "83")
		out4, _ := k.node.NS.Run("ip", "-4", "route", "show", "type", "blackhole", "proto", "83")
		return out6 + out4
	}
	announces := func(p string) bool {
		conf, _ := os.ReadFile(bn.Config)
		return strings.Contains(string(conf), "route "+p+" blackhole;")
	}
	waitFor(t, "new pools in use, old ones draining", func() bool {
		bh := blackholes()
		for _, p := range []string{old6, old4, new6, new4} {
			if !strings.Contains(bh, p) || !announces(p) {
				return false
			}
		}
		return true
	})
	waitFor(t, "status.drainingPools lists the old pools", func() bool {
		return drainingPools(ctx, k) == old4+"=1,"+old6+"=1"
	})
	waitFor(t, "a PoolDraining event on the NodeConfig", func() bool { return hasEvent(ctx, k, "PoolDraining", old6) })
	// The pod keeps its gateway: the old pool's IPv4 gateway stays on lo.
	if out, _ := k.node.NS.Run("ip", "-4", "addr", "show", "dev", "lo"); !strings.Contains(out, "198.18.1.1/32") || !strings.Contains(out, "198.18.2.1/32") {
		t.Errorf("lo lacks a pool gateway while draining:\n%s", out)
	}
	_, podNew := k.pod(t, ctx, "new", "c0ffee32", nil)
	_ = podNew

	list, err := k.node.FlockConflist("1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := k.node.Del(ctx, list, cnitest.Runtime("c0ffee31", podNS.Path, "demo", "old")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old pools dropped after the last pod's DEL", func() bool {
		bh := blackholes()
		return !strings.Contains(bh, old6) && !strings.Contains(bh, old4) && !announces(old6) && !announces(old4) &&
			strings.Contains(bh, new6) && announces(new6)
	})
	waitFor(t, "status.drainingPools empty", func() bool { return drainingPools(ctx, k) == "" })
	waitFor(t, "a PoolDrained event on the NodeConfig", func() bool { return hasEvent(ctx, k, "PoolDrained", old6) })
}

// drainingPools renders the NodeConfig's status.drainingPools as
// cidr=allocations, comma-separated.
func drainingPools(ctx context.Context, k *kubeNode) string {
	u, err := k.ncs.Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		return "error: " + err.Error()
	}
	raw, _, _ := unstructured.NestedSlice(u.Object, "status", "drainingPools")
	var parts []string
	for _, r := range raw {
		m, _ := r.(map[string]any)
		parts = append(parts, fmt.Sprintf("%v=%v", m["cidr"], m["allocations"]))
	}
	return strings.Join(parts, ",")
}

func hasEvent(ctx context.Context, k *kubeNode, reason, text string) bool {
	l, err := k.admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		return false
	}
	for _, e := range l.Items {
		if e.InvolvedObject.Kind == "NodeConfig" && e.InvolvedObject.Name == "node-1" && e.Reason == reason && strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}
