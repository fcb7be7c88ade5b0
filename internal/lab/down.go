package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/topology"
)

// Down removes everything Up made with these options: its processes, the
// control plane, every namespace named Prefix-* (router, nodes, pods, with
// their links and routes) and the run and state directories. It relies only
// on names and recorded pids, so it also cleans up after a crash; a lab that
// is not there is fine. The kube-apiserver build cache stays.
func Down(ctx context.Context, opts Options) error {
	opts = opts.withDefaults()
	var errs []error
	// kubelet-lite first: it stops its pods' processes as it exits, and
	// still has the API server and agents to talk to. A real kubelet leaves
	// its pods to containerd: they are removed through the CRI next, while
	// the agents still answer CNI DEL.
	errs = append(errs, opts.stopDaemonsMatching(func(name string) bool { return strings.HasSuffix(name, "-kubelet") }, 15*time.Second))
	errs = append(errs, opts.downReal(ctx))
	errs = append(errs, opts.stopDaemonsMatching(func(string) bool { return true }, 10*time.Second))

	// Whatever still runs in the lab's namespaces (pod processes of a
	// crashed kubelet-lite, commands started with flock-lab exec).
	names, err := topology.ListNetns(opts.Prefix + "-")
	errs = append(errs, err)
	errs = append(errs, stopPids(pidsInNetns(names), 2*time.Second))

	if _, err := os.Stat(opts.controlPlaneDir()); err == nil {
		if cp, err := controlplane.Load(opts.controlPlaneDir()); err == nil {
			errs = append(errs, cp.Stop())
		}
	}
	errs = append(errs, topology.Remove(opts.Prefix))
	errs = append(errs, opts.removeCgroups())
	for _, dir := range []string{opts.RunDir, opts.StateDir} {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// stopDaemonsMatching stops the recorded daemons whose names match.
func (o Options) stopDaemonsMatching(match func(string) bool, grace time.Duration) error {
	entries, err := os.ReadDir(o.pidDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list daemons in %s: %w", o.pidDir(), err)
	}
	var pids []int
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".pid")
		if !ok || !match(name) {
			continue
		}
		if pid, ok := o.daemonPid(name); ok {
			pids = append(pids, pid)
		}
	}
	if err := stopPids(pids, grace); err != nil {
		return fmt.Errorf("stop daemons of %s: %w", filepath.Dir(o.pidDir()), err)
	}
	return nil
}
