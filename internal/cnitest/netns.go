// Package cnitest runs flock the way a container runtime does, for the
// privileged end-to-end tests and the CNI benchmark: a "node" network
// namespace with a real flock-agent in it, pod namespaces, and CNI calls
// through libcni executing the real plugin binaries inside the node's
// namespace (so nothing ever touches the machine's own network).
package cnitest

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/fritzlab/flock/internal/testns"
)

// Netns is a named network namespace (ip netns add).
type Netns struct {
	Name string
	Path string
}

// NewNetns creates a namespace named by testns.Name, so parallel and
// leftover runs never collide. Its loopback is up.
func NewNetns(role string) (*Netns, error) {
	name, err := testns.Add(role)
	if err != nil {
		return nil, err
	}
	n := &Netns{Name: name, Path: testns.Path(name)}
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
func (n *Netns) Close() error { return testns.Delete(n.Name) }
