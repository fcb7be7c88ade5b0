// Package benchlab is what the flock-lab benchmarks share: a lab of their
// own, the upstream router's view of it, and how they report latencies.
package benchlab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fritzlab/flock/internal/lab"
)

// Main brings up a two-node lab of its own (namespaces flk-PREFIX-PID-*,
// folders under a temporary one), runs measure on it and takes the lab
// down again. On an error it prints "NAME: error" and exits 1.
func Main(name, prefix string, measure func(ctx context.Context, l *lab.Lab, dir string) error) {
	// kubelet-lite: these benchmarks time flock's control path (API change to
	// the router's kernel) and flip readiness through host files.
	MainWith(name, prefix, lab.Options{Nodes: 2, Runtime: lab.RuntimeLite}, measure)
}

// MainWith is Main on a lab of the given shape (nodes, runtime); prefix,
// folders and log are set here.
func MainWith(name, prefix string, opts lab.Options, measure func(ctx context.Context, l *lab.Lab, dir string) error) {
	if err := run(name, prefix, opts, measure); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func run(name, prefix string, opts lab.Options, measure func(ctx context.Context, l *lab.Lab, dir string) error) error {
	dir, err := os.MkdirTemp("", "flock-"+name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	opts.Prefix = fmt.Sprintf("flk-%s%d", prefix, os.Getpid())
	opts.RunDir, opts.StateDir, opts.Log = filepath.Join(dir, "run"), filepath.Join(dir, "state"), os.Stderr
	// Explicit NodeConfigs: the benchmarks patch them, which flock-controller
	// would undo.
	opts.ExplicitNodeConfigs = true
	ctx := context.Background()
	l, err := lab.Up(ctx, opts)
	defer lab.Down(context.Background(), opts)
	if err != nil {
		return err
	}
	return measure(ctx, l, dir)
}

// RouterHas reports whether the lab's router has a route to dst (an
// address or a prefix) in its kernel table.
func RouterHas(l *lab.Lab, dst string) bool {
	fam := "-4"
	if strings.Contains(dst, ":") {
		fam = "-6"
	}
	out, _ := exec.Command("ip", "-n", l.Router, fam, "route", "show", dst).Output()
	return strings.Contains(string(out), dst)
}

// Percentiles returns the median and the 99th percentile of d.
func Percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[(len(s)-1)*99/100]
}

// Ms formats d in milliseconds, to a tenth.
func Ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// WaitState waits until the API shows the backend ready (or not), as
// apiReady reads it (false on an error), then until the router agrees
// (routed), and appends the delay between the two to out (when not nil):
// what the benchmarks measure. what names the API's side in the error.
func WaitState(ctx context.Context, what string, apiReady func(context.Context) (bool, error), ready bool, routed func() bool, timeout time.Duration, out *[]time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := apiReady(ctx)
		if err == nil && got == ready {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s never showed ready=%v", what, ready)
		}
		time.Sleep(2 * time.Millisecond)
	}
	seen := time.Now()
	for routed() != ready {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("router never agreed with ready=%v", ready)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if out != nil {
		*out = append(*out, time.Since(seen))
	}
	return nil
}
