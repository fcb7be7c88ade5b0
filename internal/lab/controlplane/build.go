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

// moduleFiles are the inputs of the kube-apiserver build: a change to any of
// them gives a new cache key, so a bumped version is rebuilt.
var moduleFiles = []string{"go.mod", "go.sum", "main.go"}

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
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	if log == nil {
		log = os.Stderr
	}
	return buildAPIServer(ctx, cacheDir, log)
}

// buildAPIServer returns the path of the cached kube-apiserver binary for the
// current hack/kube-apiserver module, building it first if needed. A file
// lock serialises builds across processes: a cold build takes minutes and two
// at once on a small machine take twice as long.
func buildAPIServer(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	root, err := SourceRoot()
	if err != nil {
		return "", err
	}
	modDir := filepath.Join(root, "hack", "kube-apiserver")
	key, err := hashFiles(modDir, moduleFiles)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cacheDir, "kube-apiserver-"+KubeVersion+"-"+key[:12])
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
	if err := goBuild(ctx, modDir, bin, log); err != nil {
		return "", err
	}
	return bin, nil
}

func hashFiles(dir string, names []string) (string, error) {
	h := sha256.New()
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("read kube-apiserver module: %w", err)
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
			fmt.Fprintf(log, "waiting for another kube-apiserver build (%s)\n", path)
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
func goBuild(ctx context.Context, modDir, bin string, log io.Writer) error {
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
	cmd := exec.CommandContext(ctx, goBin, "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", tmp, ".")
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false", "CGO_ENABLED=0")
	out, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("build kube-apiserver: %w", err)
	}
	fmt.Fprintf(log, "building kube-apiserver %s into %s (first time only; takes a few minutes)\n", KubeVersion, filepath.Dir(bin))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("build kube-apiserver: %w", err)
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
			fmt.Fprintf(log, "building kube-apiserver: %d packages, %s\n", packages.Load(), time.Since(start).Round(time.Second))
		}
	}
	if err := cmd.Wait(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("build kube-apiserver in %s: %w\n%s", modDir, err, strings.Join(tail, "\n"))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return fmt.Errorf("install kube-apiserver: %w", err)
	}
	fmt.Fprintf(log, "built kube-apiserver in %s\n", time.Since(start).Round(time.Second))
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
	return "", errors.New("go command not found (needed to build kube-apiserver)")
}
