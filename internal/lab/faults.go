package lab

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/fritzlab/flock/internal/lab/controlplane"
)

// The faults `make chaos` injects, beside KillBIRD and StartBIRD.

// KillAgent kills a node's agent with SIGKILL, as a crash would, and waits
// until it is gone.
func (l *Lab) KillAgent(node string) error { return l.kill(node + "-agent") }

// StartAgent starts a node's agent again, on the allocations it left.
func (l *Lab) StartAgent(node string) error {
	n, ok := l.Node(node)
	if !ok {
		return fmt.Errorf("no node %s in the lab", node)
	}
	_, err := l.startDaemon(l.agentDaemon(n))
	return err
}

// StopAPI takes the API away from every node (the forwarder their agents
// and kubelets reach the API server through): to them the API server is
// down.
func (l *Lab) StopAPI() error { return l.kill("apiproxy") }

// StartAPI brings the nodes' way to the API back.
func (l *Lab) StartAPI(ctx context.Context) error { return l.startAPIProxy(ctx) }

func (l *Lab) kill(name string) error {
	pid, ok := l.daemonPid(name)
	if !ok {
		return fmt.Errorf("%s is not running", name)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", name, err)
	}
	for controlplane.PidAlive(pid, "") {
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
