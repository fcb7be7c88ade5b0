// Package nodepool tests flock-controller against a real kube-apiserver:
// the binary itself, as replicas of the Deployment run it, with the RBAC
// of deploy/controller-rbac.yaml, several at once competing for the Lease.
package nodepool

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/controlplane"
)

// ControllerUser is the controller's ServiceAccount identity.
const controllerUser = "system:serviceaccount:kube-system:flock-controller"

var (
	env     *harness
	envErr  error
	envOnce sync.Once
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		env.cp.Stop()
		os.RemoveAll(env.dir)
	}
	os.Exit(code)
}

// harness is one control plane with the controller's RBAC and a built
// flock-controller, shared by the package's tests (each uses its own
// Lease, NodePool and Node names).
type harness struct {
	dir, bin, kubeconfig string
	cp                   *controlplane.ControlPlane
	cs                   kubernetes.Interface
	dc                   dynamic.Interface
}

func setup(t *testing.T) *harness {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (as CI runs it): starts etcd and kube-apiserver")
	}
	envOnce.Do(func() { env, envErr = start() })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return env
}

func start() (*harness, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	h := &harness{}
	var err error
	if h.dir, err = os.MkdirTemp("", "flock-nodepool-test-"); err != nil {
		return nil, err
	}
	root, err := controlplane.SourceRoot()
	if err != nil {
		return nil, err
	}
	h.bin = filepath.Join(h.dir, "flock-controller")
	build := exec.CommandContext(ctx, "go", "build", "-o", h.bin, "./cmd/flock-controller")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build flock-controller: %v\n%s", err, out)
	}
	token := controlplane.NewToken()
	h.cp, err = controlplane.Start(ctx, controlplane.Options{
		Dir: filepath.Join(h.dir, "cp"), Log: &bytes.Buffer{},
		Tokens: []controlplane.Token{{Token: token, User: controllerUser, UID: "flock-controller",
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system"}}},
	})
	if err != nil {
		return nil, err
	}
	if err := controlplane.ApplyFiles(ctx, h.cp.RESTConfig(), filepath.Join(root, "deploy", "controller-rbac.yaml")); err != nil {
		return nil, err
	}
	h.kubeconfig = filepath.Join(h.dir, "controller.kubeconfig")
	if err := controlplane.WriteKubeconfig(h.kubeconfig, h.cp.Server, h.cp.CAFile, token); err != nil {
		return nil, err
	}
	if h.cs, err = kubernetes.NewForConfig(h.cp.RESTConfig()); err != nil {
		return nil, err
	}
	if h.dc, err = dynamic.NewForConfig(h.cp.RESTConfig()); err != nil {
		return nil, err
	}
	return h, nil
}

// replica is one running flock-controller process.
type replica struct {
	id  string
	cmd *exec.Cmd
	log *bytes.Buffer
}

// lease is the one Lease the controller's RBAC lets it renew; the tests
// run one after the other, each starting its replicas afresh.
const lease = "flock-controller"

// startReplica runs flock-controller competing for the Lease, with lease
// times short enough for a test. It is killed when the test ends.
func (h *harness) startReplica(t *testing.T, id string) *replica {
	t.Helper()
	r := &replica{id: id, log: &bytes.Buffer{}}
	r.cmd = exec.Command(h.bin, "--kubeconfig", h.kubeconfig, "--identity", id, "--lease-name", lease,
		"--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms", "--resync", "5s")
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", id, r.log)
		}
	})
	return r
}

// kill ends the replica with SIGKILL: no lease release, as a crash.
func (r *replica) kill() {
	if r.cmd.ProcessState == nil {
		r.cmd.Process.Signal(syscall.SIGKILL)
		r.cmd.Wait()
	}
}

// createPool creates a NodePool selecting the Nodes labelled pool=name.
func (h *harness) createPool(t *testing.T, name string, spec v1alpha1.NodePoolSpec) {
	t.Helper()
	spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": name}}
	np := &v1alpha1.NodePool{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.NodePoolKind},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       spec,
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(np)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.dc.Resource(v1alpha1.NodePoolGVR).Create(context.Background(), &unstructured.Unstructured{Object: m}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) createNode(t *testing.T, pool, name string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pool": pool}}}
	if _, err := h.cs.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Error(err)
	}
}

// createNodes creates the Nodes all at once, each from its own goroutine.
func (h *harness) createNodes(t *testing.T, pool string, names []string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() { h.createNode(t, pool, n) })
	}
	wg.Wait()
}

func (h *harness) deleteNode(t *testing.T, name string) {
	t.Helper()
	if err := h.cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// configs returns the NodeConfigs of pool's label, by name.
func (h *harness) configs(t *testing.T, pool string) map[string]*v1alpha1.NodeConfig {
	t.Helper()
	list, err := h.dc.Resource(v1alpha1.NodeConfigGVR).List(context.Background(),
		metav1.ListOptions{LabelSelector: v1alpha1.LabelNodePool + "=" + pool})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*v1alpha1.NodeConfig{}
	for _, u := range list.Items {
		nc := &v1alpha1.NodeConfig{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, nc); err != nil {
			t.Fatal(err)
		}
		out[nc.Name] = nc
	}
	return out
}

// checkDistinct fails the test when two NodeConfigs' pools overlap or one
// lies outside the pool's ranges.
func checkDistinct(t *testing.T, ncs map[string]*v1alpha1.NodeConfig, range6, range4 string) {
	t.Helper()
	r6, r4 := netip.MustParsePrefix(range6), netip.MustParsePrefix(range4)
	owner := map[netip.Prefix]string{}
	for name, nc := range ncs {
		for _, s := range []string{nc.Spec.CIDR6, nc.Spec.CIDR4} {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				t.Errorf("%s: pool %q: %v", name, s, err)
				continue
			}
			if !r6.Contains(p.Addr()) && !r4.Contains(p.Addr()) {
				t.Errorf("%s: pool %s outside %s and %s", name, p, r6, r4)
			}
			for q, other := range owner {
				if q.Overlaps(p) {
					t.Errorf("%s and %s both hold %s / %s", name, other, p, q)
				}
			}
			owner[p] = name
		}
	}
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not after %s (%s)", what, timeout, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leaseHolder is the Lease's holder, "" while there is none.
func (h *harness) leaseHolder() string {
	l, err := h.cs.CoordinationV1().Leases("kube-system").Get(context.Background(), lease, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s-%03d", prefix, i))
	}
	return out
}

func keys[V any](m map[string]V) string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}
