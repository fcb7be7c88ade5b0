package kubelet

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/testns"
)

// serveEnv makes the test binary a container: `flock-lab serve` on the
// TCP and UDP port it names.
const serveEnv = "FLOCK_KUBELET_TEST_SERVE"

// netnsEnv makes the test binary create (or with a "-" prefix, delete) the
// named namespace the way kubelet-lite does, wherever it was started.
const netnsEnv = "FLOCK_KUBELET_TEST_NETNS"

func TestMain(m *testing.M) {
	if name := os.Getenv(netnsEnv); name != "" {
		h, err := newHost("")
		if err == nil {
			if del, ok := strings.CutPrefix(name, "-"); ok {
				err = h.deleteNetns(del)
			} else {
				err = h.createNetns(name)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if port := os.Getenv(serveEnv); port != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		p, _ := strconv.Atoi(port)
		if err := Serve(ctx, []int{p}, []int{p}, os.Getenv("POD_NAMESPACE")+"/"+os.Getenv("POD_NAME")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var (
	pool6 = netip.MustParsePrefix("2001:db8:f10c:7::/64")
	pool4 = netip.MustParsePrefix("198.18.77.0/24")
)

// env is the integration test's world: a real API server in the test's
// (root) namespace, a node namespace with a real flock-agent (file mode),
// and kubelet-lite running in-process with NodeNetns pointing at it.
type env struct {
	t      *testing.T // the running (sub)test
	root   *testing.T
	ctx    context.Context
	cs     *kubernetes.Clientset
	node   *cnitest.Node
	binDir string
	cfg    Config // node-1's kubelet-lite
	rest   *rest.Config
	stop   func() // stops node-1's kubelet-lite and waits for it
}

func setup(t *testing.T) *env {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, etcd, kube-apiserver); CI runs as root")
	}
	testns.RemoveLeftovers()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, root: t, ctx: ctx, binDir: t.TempDir()}
	if err := cnitest.BuildBinaries(e.binDir); err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Stop() })
	if e.cs, err = kubernetes.NewForConfig(cp.RESTConfig()); err != nil {
		t.Fatal(err)
	}
	// No controller manager makes the default ServiceAccount, which the
	// ServiceAccount admission plugin wants when it is on.
	sa := &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "default"}}
	if _, err := e.cs.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	e.rest = cp.RESTConfig()
	e.node, e.cfg = e.newNode("node-1", 1)
	e.start()
	t.Cleanup(func() { e.stop() })
	return e
}

// newNode makes node NAME, the n-th: a namespace with the agent (pools
// 2001:db8:f10c:(6+n)::/64 and 198.18.(76+n).0/24), the node's addresses
// 2001:db8:1ab:n::2 and 198.19.n.2 on its lo (where hostPorts are reached),
// a conflist with flock and portmap, and kubelet-lite's configuration.
func (e *env) newNode(name string, n int) (*cnitest.Node, Config) {
	t := e.t
	dir := t.TempDir()
	nc := fmt.Sprintf("apiVersion: flock.fritzlab.net/v1alpha1\nkind: NodeConfig\nmetadata:\n  name: %s\n"+
		"spec:\n  cidr6: 2001:db8:f10c:%x::/64\n  cidr4: 198.18.%d.0/24\n", name, 6+n, 76+n)
	node, err := cnitest.NewNode(e.binDir, dir, nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log of %s:\n%s", name, node.AgentLog())
		}
		node.Close()
	})
	if err := node.StartAgent(); err != nil {
		t.Fatal(err)
	}
	hostIPs := []string{fmt.Sprintf("2001:db8:1ab:%x::2", n), fmt.Sprintf("198.19.%d.2", n)}
	for _, a := range []string{hostIPs[0] + "/128", hostIPs[1] + "/32"} {
		if _, err := node.NS.Run("ip", "addr", "add", a, "dev", "lo"); err != nil {
			t.Fatal(err)
		}
	}
	conflist := filepath.Join(dir, "10-flock.conflist")
	b, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "flock", "plugins": []map[string]any{
		{"type": "flock", "socket": node.Socket},
		{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
	}})
	if err := os.WriteFile(conflist, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return node, Config{
		NodeName:       name,
		RESTConfig:     e.rest,
		CNIBinDir:      e.binDir,
		CNIConfList:    conflist,
		StateDir:       filepath.Join(dir, "kubelet"),
		PodNetnsPrefix: fmt.Sprintf("flk-klpod-%d-", os.Getpid()),
		HostIPs:        hostIPs,
		NodeNetns:      node.NS.Path,
		Log:            slog.New(slog.NewTextHandler(testWriter{e.root}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// start runs node-1's kubelet-lite until stop.
func (e *env) start() { e.stop = e.run(e.cfg) }

// run runs a kubelet-lite; the returned function stops it and waits.
func (e *env) run(cfg Config) (stop func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	var stopped bool
	return func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			e.root.Errorf("kubelet-lite of %s: %v", cfg.NodeName, err)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// waitPod polls the pod until cond holds.
func (e *env) waitPod(name string, what string, cond func(*v1.Pod) bool) *v1.Pod {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var p *v1.Pod
	var err error
	for time.Now().Before(deadline) {
		p, err = e.cs.CoreV1().Pods("default").Get(e.ctx, name, metav1.GetOptions{})
		if err == nil && cond(p) {
			return p
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	e.t.Fatalf("pod %s: not %s within 60s (last error %v):\n%s\nevents:\n%s", name, what, err, b, e.events(name))
	return nil
}

func (e *env) waitGone(name string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := e.cs.CoreV1().Pods("default").Get(e.ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("pod %s still exists 30s after its deletion; events:\n%s", name, e.events(name))
}

func (e *env) events(name string) string {
	list, err := e.cs.CoreV1().Events("default").List(e.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, ev := range list.Items {
		fmt.Fprintf(&b, "%s %s %s: %s\n", ev.Type, ev.Source.Component, ev.Reason, ev.Message)
	}
	return b.String()
}

func podReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// allocations counts the allocation records of node-1's agent.
func (e *env) allocations() int { return countAllocations(e.node.Dir) }

// countAllocations counts the allocation records of the agent of the node
// in dir.
func countAllocations(dir string) int {
	entries, _ := os.ReadDir(filepath.Join(dir, "allocations"))
	n := 0
	for _, en := range entries {
		if strings.HasSuffix(en.Name(), ".json") {
			n++
		}
	}
	return n
}

// ask connects from the node's namespace to addr and returns the line the
// server answers.
func (e *env) ask(network, addr string) (string, error) {
	h, err := ns.GetNS(e.node.NS.Path)
	if err != nil {
		return "", err
	}
	defer h.Close()
	var line string
	err = h.Do(func(ns.NetNS) error {
		c, err := net.DialTimeout(network, addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if network == "udp" {
			c.Write([]byte("?"))
		}
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return line, err
}

// hostPort is where the node forwards to the serve pod (portmap).
const hostPort = 18080

func servePod(name string) *v1.Pod {
	self, _ := os.Executable()
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: v1.PodSpec{Containers: []v1.Container{
			{
				Name: "serve", Image: "ignored.example/serve", Command: []string{self},
				Env:   []v1.EnvVar{{Name: serveEnv, Value: "8080"}},
				Ports: []v1.ContainerPort{{Name: "serve", ContainerPort: 8080, HostPort: hostPort}},
				ReadinessProbe: &v1.Probe{PeriodSeconds: 1, ProbeHandler: v1.ProbeHandler{
					TCPSocket: &v1.TCPSocketAction{Port: intstr.FromString("serve")}}},
			},
			{
				Name: "sleep", Image: "ignored.example/sleep", Command: []string{"sleep"}, Args: []string{"1000"},
				ReadinessProbe: &v1.Probe{PeriodSeconds: 1, ProbeHandler: v1.ProbeHandler{
					Exec: &v1.ExecAction{Command: []string{"sh", "-c", `test -n "$POD_IP" && ip -6 addr show dev eth0 | grep -q "$POD_IP"`}}}},
			},
		}},
	}
}
