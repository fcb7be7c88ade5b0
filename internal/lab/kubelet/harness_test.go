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
	"runtime"
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

	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/internal/lab/controlplane"
)

// serveEnv makes the test binary a container: `flock-lab serve` on the
// TCP and UDP port it names.
const serveEnv = "FLOCK_KUBELET_TEST_SERVE"

func TestMain(m *testing.M) {
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

const nodeConfig = `apiVersion: flock.fritzlab.net/v1alpha1
kind: NodeConfig
metadata:
  name: node-1
spec:
  cidr6: 2001:db8:f10c:7::/64
  cidr4: 198.18.77.0/24
`

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
	cfg    Config
	stop   func() // stops the running kubelet-lite and waits for it
}

func setup(t *testing.T) *env {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, etcd, kube-apiserver); CI runs as root")
	}
	_, file, _, _ := runtime.Caller(0)
	if _, err := os.Stat(filepath.Join(filepath.Dir(file), "..", "controlplane", "READY")); err != nil {
		t.Skip("internal/lab/controlplane is not READY yet")
	}
	cnitest.RemoveLeftovers()
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
	// No controller manager: the default ServiceAccount the admission
	// plugin wants must be made by hand.
	sa := &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "default"}}
	if _, err := e.cs.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if e.node, err = cnitest.NewNode(e.binDir, dir, nodeConfig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", e.node.AgentLog())
		}
		e.node.Close()
	})
	if err := e.node.StartAgent(); err != nil {
		t.Fatal(err)
	}
	// The node's own addresses, which hostPorts are reached on.
	for _, a := range []string{"2001:db8:1ab:1::2/128", "198.19.1.2/32"} {
		if _, err := e.node.NS.Run("ip", "addr", "add", a, "dev", "lo"); err != nil {
			t.Fatal(err)
		}
	}
	conflist := filepath.Join(dir, "10-flock.conflist")
	b, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": "flock", "plugins": []map[string]any{
		{"type": "flock", "socket": e.node.Socket},
		{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
	}})
	if err := os.WriteFile(conflist, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.cfg = Config{
		NodeName:       "node-1",
		RESTConfig:     cp.RESTConfig(),
		CNIBinDir:      e.binDir,
		CNIConfList:    conflist,
		StateDir:       filepath.Join(dir, "kubelet"),
		PodNetnsPrefix: fmt.Sprintf("flk-klpod-%d-", os.Getpid()),
		HostIPs:        []string{"2001:db8:1ab:1::2", "198.19.1.2"},
		NodeNetns:      e.node.NS.Path,
		Log:            slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	e.start()
	t.Cleanup(func() { e.stop() })
	return e
}

// start runs kubelet-lite until stop.
func (e *env) start() {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, e.cfg) }()
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			e.root.Errorf("kubelet-lite: %v", err)
		}
		e.stop = func() {}
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

// allocations counts the agent's allocation records.
func (e *env) allocations() int {
	entries, _ := os.ReadDir(filepath.Join(e.node.Dir, "allocations"))
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
