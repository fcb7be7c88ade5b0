// Package controlplanetest gives a test binary one real control plane
// (etcd and kube-apiserver, with deploy/crd/ installed), started on first
// use and stopped when the binary's tests are done.
package controlplanetest

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/fritzlab/flock/internal/lab/controlplane"
)

// Shared is one lazily started control plane; its zero value is ready.
type Shared struct {
	// Name tells its state directory apart (flock-<Name>-test-*).
	Name string

	once sync.Once
	cp   *controlplane.ControlPlane
	err  error
	dir  string
}

// Get returns the control plane, starting it on the first call, or skips
// the test when not root (CI runs as root).
func (s *Shared) Get(t testing.TB) *controlplane.ControlPlane {
	t.Helper()
	skipUnlessRoot(t)
	s.once.Do(func() {
		// The first start builds kube-apiserver (minutes); later ones reuse it.
		ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
		defer cancel()
		if s.dir, s.err = os.MkdirTemp("", "flock-"+s.Name+"-test-"); s.err != nil {
			return
		}
		var log io.Writer = io.Discard
		if testing.Verbose() {
			log = os.Stderr
		}
		s.cp, s.err = controlplane.Start(ctx, controlplane.Options{Dir: s.dir, Log: log})
	})
	if s.err != nil {
		t.Fatal(fmt.Errorf("start control plane: %w", s.err))
	}
	return s.cp
}

// Main runs the binary's tests, stops the control plane and exits with
// their code: a package's whole TestMain is `func TestMain(m *testing.M) {
// shared.Main(m) }`.
func (s *Shared) Main(m *testing.M) {
	code := m.Run()
	s.Stop()
	os.Exit(code)
}

// Stop stops the control plane, if it was started, and removes its state.
func (s *Shared) Stop() {
	if s.cp != nil {
		s.cp.Stop()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

func skipUnlessRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (as CI runs it): starts etcd and kube-apiserver")
	}
}
