package controlplanetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/internal/lab/controlplane"
)

// ControllerUser is the identity of flock-controller's ServiceAccount
// token: a replica started with it gets only what
// deploy/controller-rbac.yaml grants, as in a cluster.
const ControllerUser = "system:serviceaccount:kube-system:flock-controller"

// Lease is the one Lease the controller's RBAC lets it renew.
const Lease = "flock-controller"

// Lease times of StartReplica, short enough for a test.
const (
	LeaseDuration = 4 * time.Second
	RenewDeadline = 3 * time.Second
	RetryPeriod   = 500 * time.Millisecond
)

// Controller is one lazily started control plane with flock-controller's
// RBAC applied and a flock-controller built from the tree, shared by a
// test binary's tests; its zero value (with a Name) is ready.
type Controller struct {
	// Name tells its state directory apart (flock-<Name>-test-*).
	Name string

	once sync.Once
	env  *ControllerEnv
	err  error
	dir  string
}

// ControllerEnv is what Controller.Get gives a test.
type ControllerEnv struct {
	CP *controlplane.ControlPlane
	// Kube and Dynamic are admin clients.
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Bin is the built flock-controller; Kubeconfig authenticates as
	// ControllerUser.
	Bin, Kubeconfig string
}

// Get returns the environment, starting it on the first call, or skips
// the test when not root (CI runs as root).
func (c *Controller) Get(t testing.TB) *ControllerEnv {
	t.Helper()
	skipUnlessRoot(t)
	c.once.Do(func() { c.env, c.err = c.start() })
	if c.err != nil {
		t.Fatal(fmt.Errorf("start control plane with flock-controller: %w", c.err))
	}
	return c.env
}

// Main runs the binary's tests, stops the control plane and exits with
// their code.
func (c *Controller) Main(m *testing.M) {
	code := m.Run()
	if c.env != nil {
		c.env.CP.Stop()
	}
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
	os.Exit(code)
}

func (c *Controller) start() (*ControllerEnv, error) {
	// The first start builds kube-apiserver (minutes); later ones reuse it.
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	var err error
	if c.dir, err = os.MkdirTemp("", "flock-"+c.Name+"-test-"); err != nil {
		return nil, err
	}
	root, err := controlplane.SourceRoot()
	if err != nil {
		return nil, err
	}
	e := &ControllerEnv{Bin: filepath.Join(c.dir, "flock-controller")}
	build := exec.CommandContext(ctx, "go", "build", "-o", e.Bin, "./cmd/flock-controller")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build flock-controller: %v\n%s", err, out)
	}
	token := controlplane.NewToken()
	e.CP, err = controlplane.Start(ctx, controlplane.Options{
		Dir: filepath.Join(c.dir, "cp"), Log: &bytes.Buffer{},
		Tokens: []controlplane.Token{{Token: token, User: ControllerUser, UID: "flock-controller",
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system"}}},
	})
	if err != nil {
		return nil, err
	}
	c.env = e // stopped by Main from here on, whatever fails next
	if err := controlplane.ApplyFiles(ctx, e.CP.RESTConfig(), filepath.Join(root, "deploy", "controller-rbac.yaml")); err != nil {
		return nil, err
	}
	e.Kubeconfig = filepath.Join(c.dir, "controller.kubeconfig")
	if err := controlplane.WriteKubeconfig(e.Kubeconfig, e.CP.Server, e.CP.CAFile, token); err != nil {
		return nil, err
	}
	if e.Kube, err = kubernetes.NewForConfig(e.CP.RESTConfig()); err != nil {
		return nil, err
	}
	if e.Dynamic, err = dynamic.NewForConfig(e.CP.RESTConfig()); err != nil {
		return nil, err
	}
	return e, nil
}

// Replica is one running flock-controller process.
type Replica struct {
	ID  string
	cmd *exec.Cmd
	log *bytes.Buffer
}

// StartReplica runs flock-controller as id, competing for the Lease with
// the lease times above and a 5 s resync, and args after those. It is
// killed when the test ends; its log is printed if the test failed.
func (e *ControllerEnv) StartReplica(t *testing.T, id string, args ...string) *Replica {
	t.Helper()
	r := &Replica{ID: id, log: &bytes.Buffer{}}
	r.cmd = exec.Command(e.Bin, append([]string{"--kubeconfig", e.Kubeconfig, "--identity", id, "--lease-name", Lease,
		"--lease-duration", LeaseDuration.String(), "--renew-deadline", RenewDeadline.String(),
		"--retry-period", RetryPeriod.String(), "--resync", "5s"}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", id, r.log)
		}
	})
	return r
}

// Kill ends the replica with SIGKILL: no lease release, as a crash.
func (r *Replica) Kill() {
	if r.cmd.ProcessState == nil {
		r.cmd.Process.Signal(syscall.SIGKILL)
		r.cmd.Wait()
	}
}

// LeaseHolder is the Lease's holder, "" while there is none.
func (e *ControllerEnv) LeaseHolder() string {
	l, err := e.Kube.CoordinationV1().Leases("kube-system").Get(context.Background(), Lease, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// WaitFor polls cond every 100 ms until it holds, and returns how long
// that took, or fails the test after timeout with what and cond's last
// state.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
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
