// Package testns gives kernel tests, benchmarks and demos network namespaces
// of their own, named flk-ROLE-PID-N so that parallel runs never meet and a
// killed run's leftovers can be told from a live run's namespaces.
package testns

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

var seq atomic.Int64

// Name returns a namespace name no other namespace of this or any other
// run has: flk-ROLE-PID-N. It creates nothing; for code under test that
// makes the namespace itself.
func Name(role string) string {
	return fmt.Sprintf("flk-%s-%d-%d", role, os.Getpid(), seq.Add(1))
}

// Path is where `ip netns add` binds the namespace named name.
func Path(name string) string { return "/run/netns/" + name }

// Add creates a namespace named Name(role) and returns its name. It is as
// the kernel makes it, lo down: kernel tests check what the code under
// test brings up.
func Add(role string) (string, error) {
	name := Name(role)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %w: %s", name, err, out)
	}
	return name, nil
}

// Delete deletes the namespace named name; one already gone is fine.
func Delete(name string) error {
	out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("ip netns delete %s: %w: %s", name, err, out)
	}
	return nil
}

// New creates a namespace for the test (see Add) and deletes it when the
// test ends. It skips the test for users other than root.
func New(t testing.TB, role string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create network namespaces (CI runs it as root)")
	}
	name, err := Add(role)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Delete(name); err != nil {
			t.Error(err)
		}
	})
	return name
}

// Run runs a command that must succeed and returns its combined output.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// RemoveLeftovers deletes the namespaces named by Name of processes that no
// longer exist, which a killed run leaves behind.
func RemoveLeftovers() {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		parts := strings.Split(e.Name(), "-")
		if len(parts) < 4 || parts[0] != "flk" {
			continue
		}
		pid := parts[len(parts)-2]
		if _, err := strconv.Atoi(pid); err != nil {
			continue // not one of ours (a lab's flk-lab-node-1, say)
		}
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue
		}
		_ = Delete(e.Name())
	}
}
