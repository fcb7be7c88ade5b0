// Package crd tests the NodeConfig CRD against a real kube-apiserver: the
// schema and its CEL rules accept what the agent can use and reject
// everything else with a message naming the field.
package crd

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fritzlab/flock/internal/lab/controlplane"
)

var (
	cpOnce sync.Once
	cp     *controlplane.ControlPlane
	cpErr  error
	cpDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cp != nil {
		cp.Stop()
	}
	if cpDir != "" {
		os.RemoveAll(cpDir)
	}
	os.Exit(code)
}

// controlPlane starts one control plane for the package's tests (it
// installs deploy/crd/) or skips the test when that is impossible here.
func controlPlane(t *testing.T) *controlplane.ControlPlane {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (as CI runs it): starts etcd and kube-apiserver")
	}
	root, err := controlplane.SourceRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "lab", "controlplane", "READY")); err != nil {
		t.Skip("the lab's control plane is not ready yet (no internal/lab/controlplane/READY)")
	}
	cpOnce.Do(func() {
		// The first start builds kube-apiserver (minutes); later ones reuse it.
		ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
		defer cancel()
		if cpDir, cpErr = os.MkdirTemp("", "flock-crd-test-"); cpErr != nil {
			return
		}
		var log io.Writer = io.Discard
		if testing.Verbose() {
			log = os.Stderr
		}
		cp, cpErr = controlplane.Start(ctx, controlplane.Options{Dir: cpDir, Log: log})
	})
	if cpErr != nil {
		t.Fatal(fmt.Errorf("start control plane: %w", cpErr))
	}
	return cp
}
