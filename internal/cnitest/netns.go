// Package cnitest runs flock the way a container runtime does, for the
// privileged end-to-end tests and the CNI benchmark: a "node" network
// namespace with a real flock-agent in it, pod namespaces, and CNI calls
// through libcni executing the real plugin binaries inside the node's
// namespace (so nothing ever touches the machine's own network).
package cnitest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
)

var seq atomic.Int64

// Netns is a named network namespace (ip netns add).
type Netns struct {
	Name string
	Path string
}

// NewNetns creates a namespace whose name carries the role, the process id
// and a counter, so parallel and leftover runs never collide. Its loopback
// is up.
func NewNetns(role string) (*Netns, error) {
	name := fmt.Sprintf("flk-%s-%d-%d", role, os.Getpid(), seq.Add(1))
	if len(name) > 60 {
		name = name[:60]
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	n := &Netns{Name: name, Path: "/run/netns/" + name}
	if _, err := n.Run("ip", "link", "set", "lo", "up"); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Run runs a command inside the namespace and returns its combined output.
func (n *Netns) Run(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Close deletes the namespace; a namespace already gone is fine.
func (n *Netns) Close() error {
	out, err := exec.Command("ip", "netns", "delete", n.Name).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("ip netns delete %s: %v: %s", n.Name, err, out)
	}
	return nil
}

// RemoveLeftovers deletes flk-* namespaces of processes that no longer
// exist, which a killed test run leaves behind.
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
		_ = exec.Command("ip", "netns", "delete", e.Name()).Run()
	}
}
