package controlplane

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// KubeVersion is the Kubernetes release the lab's API server is built from;
// it matches the project's client-go (v0.37.2).
const KubeVersion = "v1.37.2"

// A Component is an upstream Kubernetes binary built from a small module of
// flock's under hack/, cached in the build cache under a key of its inputs.
type Component struct {
	Name    string // the binary: kube-apiserver, kubelet, ...
	Module  string // the module's directory under hack/
	Package string // the main package inside the module
}

// The components the lab builds: the API server, and for --runtime=real the
// node stack and the two controllers it relies on.
var (
	APIServer         = Component{Name: "kube-apiserver", Module: "kube-apiserver", Package: "."}
	Kubelet           = Component{Name: "kubelet", Module: "kube-node", Package: "./kubelet"}
	KubeProxy         = Component{Name: "kube-proxy", Module: "kube-node", Package: "./kube-proxy"}
	ControllerManager = Component{Name: "kube-controller-manager", Module: "kube-node", Package: "./kube-controller-manager"}
	Scheduler         = Component{Name: "kube-scheduler", Module: "kube-node", Package: "./kube-scheduler"}
)

// NodeComponents are what `flock-lab build-node` builds.
var NodeComponents = []Component{Kubelet, KubeProxy, ControllerManager, Scheduler}

// inputs are the files of a component's build: a change to any of them gives
// a new cache key, so a bumped version is rebuilt.
func (c Component) inputs() []string {
	return []string{"go.mod", "go.sum", filepath.Join(c.Package, "main.go")}
}

// SourceRoot finds flock's module root: walking up from the working
// directory, then from where this file was compiled (binaries built without
// -trimpath on this machine, as the lab builds them). $FLOCK_SOURCE wins.
func SourceRoot() (string, error) {
	if dir := os.Getenv("FLOCK_SOURCE"); dir != "" {
		return dir, nil
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && strings.HasPrefix(string(mod), "module github.com/fritzlab/flock\n") {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("flock source tree not found (run from inside it or set FLOCK_SOURCE)")
}

// Build builds kube-apiserver into cacheDir ("" = DefaultCacheDir) unless
// it is there already, and returns its path. Start does this itself; CI and
// setup scripts call it first so that no test waits minutes for it.
func Build(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	return BuildComponent(ctx, cacheDir, APIServer, log)
}

// BuildComponent builds c into cacheDir ("" = DefaultCacheDir) unless it is
// there already, and returns its path.
func BuildComponent(ctx context.Context, cacheDir string, c Component, log io.Writer) (string, error) {
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	if log == nil {
		log = os.Stderr
	}
	return buildComponent(ctx, cacheDir, c, log)
}

func buildAPIServer(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	return buildComponent(ctx, cacheDir, APIServer, log)
}

// buildComponent returns the path of the cached binary of c for the current
// module under hack/, building it first if needed. A file lock serialises
// builds across processes: a cold build takes minutes and two at once on a
// small machine take twice as long.
func buildComponent(ctx context.Context, cacheDir string, c Component, log io.Writer) (string, error) {
	root, err := SourceRoot()
	if err != nil {
		return "", err
	}
	modDir := filepath.Join(root, "hack", c.Module)
	key, err := hashFiles(modDir, c.inputs())
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cacheDir, c.Name+"-"+KubeVersion+"-"+key[:12])
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("create cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(cacheDir, "build.lock"), log)
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another process may have built it while we waited for the lock.
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := goBuild(ctx, c, modDir, bin, log); err != nil {
		return "", err
	}
	return bin, nil
}

func hashFiles(dir string, names []string) (string, error) {
	h := sha256.New()
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("read build input: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// lockFile takes an exclusive flock on path, telling the user when it has to
// wait for another build.
func lockFile(ctx context.Context, path string, log io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open build lock: %w", err)
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !told {
			fmt.Fprintf(log, "waiting for another Kubernetes build (%s)\n", path)
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for build lock: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// goBuild builds the module in modDir into bin, printing a progress line
// every few seconds: `go build -v` names each package as it is compiled.
func goBuild(ctx context.Context, c Component, modDir, bin string, log io.Writer) error {
	goBin, err := GoTool()
	if err != nil {
		return err
	}
	pkg := "k8s.io/component-base/version"
	major, minor, _ := strings.Cut(strings.TrimPrefix(KubeVersion, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	ldflags := fmt.Sprintf("-s -w -X %[1]s.gitVersion=%[2]s -X %[1]s.gitMajor=%[3]s -X %[1]s.gitMinor=%[4]s -X %[1]s.gitTreeState=clean -X %[1]s.buildDate=%[5]s",
		pkg, KubeVersion, major, minor, time.Now().UTC().Format(time.RFC3339))
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, goBin, "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", tmp, c.Package)
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false", "CGO_ENABLED=0")
	out, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("build %s: %w", c.Name, err)
	}
	fmt.Fprintf(log, "building %s %s into %s (first time only; takes a few minutes)\n", c.Name, KubeVersion, filepath.Dir(bin))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("build %s: %w", c.Name, err)
	}
	var packages atomic.Int64
	var tail []string // the last lines, for the error message
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			packages.Add(1)
			tail = append(tail, sc.Text())
			if len(tail) > 20 {
				tail = tail[1:]
			}
		}
	}()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-tick.C:
			fmt.Fprintf(log, "building %s: %d packages, %s\n", c.Name, packages.Load(), time.Since(start).Round(time.Second))
		}
	}
	if err := cmd.Wait(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("build %s in %s: %w\n%s", c.Name, modDir, err, strings.Join(tail, "\n"))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return fmt.Errorf("install %s: %w", c.Name, err)
	}
	fmt.Fprintf(log, "built %s in %s\n", c.Name, time.Since(start).Round(time.Second))
	return nil
}

// GoTool finds the go command; under sudo PATH often lacks /usr/local/go/bin.
func GoTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/local/go/bin/go"); err == nil {
		return "/usr/local/go/bin/go", nil
	}
	return "", errors.New("go command not found (needed to build the Kubernetes components)")
}
