package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Restart back-off: kubelet's 10 s doubling to 5 min is too slow for a lab
// where a crashing pod is usually a typo being fixed; flock-lab uses 1 s
// doubling to 30 s, reset after a run of a minute.
const (
	backoffMin   = time.Second
	backoffMax   = 30 * time.Second
	backoffReset = time.Minute
)

// container is one container of a pod, run as a host process in the pod's
// namespace and restarted according to its policy.
type container struct {
	spec   v1.Container
	init   bool             // an init container that must complete (not a sidecar)
	policy v1.RestartPolicy // effective: OnFailure or Never for init containers, Always for sidecars
	w      *worker

	mu     sync.Mutex
	gen    int  // counts runs, so a late probe result of an old run is ignored
	done   bool // finished for good before a kubelet-lite restart: never run again
	status v1.ContainerStatus
}

func newContainer(w *worker, spec v1.Container, init bool, policy v1.RestartPolicy, old *v1.ContainerStatus) *container {
	c := &container{spec: spec, init: init, policy: policy, w: w}
	c.status = v1.ContainerStatus{
		Name:    spec.Name,
		Image:   spec.Image,
		Started: new(false),
		State:   v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}},
	}
	if old != nil {
		c.adopt(old)
	}
	return c
}

// adopt continues a container's history from a previous kubelet-lite run,
// whose processes stopped with it: a container that had finished for good
// stays finished; a running one counts as killed (restarted unless the
// policy is Never, which fails it, as the process is gone).
func (c *container) adopt(old *v1.ContainerStatus) {
	c.status.RestartCount = old.RestartCount
	c.status.LastTerminationState = old.LastTerminationState
	switch term := old.State.Terminated; {
	case term != nil && (c.policy == v1.RestartPolicyNever || c.policy == v1.RestartPolicyOnFailure && term.ExitCode == 0):
		c.status.State, c.status.ContainerID, c.done = old.State, old.ContainerID, true
	case old.State.Running != nil:
		lost := v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
			ExitCode: 137, Reason: "ContainerStatusUnknown", Message: "the process stopped with kubelet-lite",
			StartedAt: old.State.Running.StartedAt, FinishedAt: now(),
		}}
		if c.policy == v1.RestartPolicyNever {
			c.status.State, c.done = lost, true
		} else {
			c.status.LastTerminationState = lost
			c.status.RestartCount++
		}
	case term != nil: // about to be restarted
		c.status.LastTerminationState = old.State
	}
}

func (c *container) snapshot() v1.ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.status.DeepCopy()
}

func (c *container) update(f func(s *v1.ContainerStatus)) {
	c.mu.Lock()
	f(&c.status)
	c.mu.Unlock()
	c.w.notify()
}

func (c *container) setWaiting(reason, msg string) {
	c.update(func(s *v1.ContainerStatus) {
		s.State = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: reason, Message: msg}}
		s.Ready, s.Started = false, new(false)
	})
}

// setReady records a readiness probe's verdict for run gen.
func (c *container) setReady(gen int, ready bool) {
	c.mu.Lock()
	ok := c.gen == gen && c.status.State.Running != nil && c.status.Ready != ready
	if ok {
		c.status.Ready = ready
	}
	c.mu.Unlock()
	if ok {
		c.w.notify()
	}
}

// loop runs the container until it completes for good or ctx ends, and
// says whether its last run exited 0.
func (c *container) loop(ctx context.Context) bool {
	if c.done {
		return c.status.State.Terminated.ExitCode == 0
	}
	delay := time.Duration(0)
	for {
		if ctx.Err() != nil {
			return false
		}
		code, ran := c.once(ctx)
		if ctx.Err() != nil {
			return false
		}
		if c.policy == v1.RestartPolicyNever || c.policy == v1.RestartPolicyOnFailure && code == 0 {
			return code == 0
		}
		switch {
		case delay == 0 || ran >= backoffReset:
			delay = backoffMin
		default:
			delay = min(2*delay, backoffMax)
		}
		c.mu.Lock()
		last := c.status.State
		c.status.LastTerminationState = last
		c.mu.Unlock()
		msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.spec.Name, c.w.rec.Name, c.w.rec.Namespace, c.w.uid)
		c.setWaiting("CrashLoopBackOff", msg)
		c.w.event(v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s", c.spec.Name)
		if !sleepCtx(ctx, delay) {
			return false
		}
		c.update(func(s *v1.ContainerStatus) { s.RestartCount++ })
	}
}

// once starts the process, waits for it (stopping it gracefully when ctx
// ends) and returns its exit code and how long it ran.
func (c *container) once(ctx context.Context) (code int32, ran time.Duration) {
	env, argv, err := c.w.commandFor(&c.spec)
	if err != nil {
		c.terminated(nil, 128, "StartError", err.Error(), now())
		c.w.event(v1.EventTypeWarning, "Failed", "Error: %v", err)
		return 128, 0
	}
	logPath := filepath.Join(c.w.logDir(), c.spec.Name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.terminated(nil, 128, "StartError", err.Error(), now())
		return 128, 0
	}
	defer logf.Close()
	dir := c.spec.WorkingDir
	if dir == "" {
		dir = "/"
	}
	cmd := c.w.k.host.command(c.w.rec.Netns, argv, env, dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.terminated(nil, 128, "StartError", err.Error(), now())
		c.w.event(v1.EventTypeWarning, "Failed", "Error: start container %s: %v", c.spec.Name, err)
		return 128, 0
	}
	pid := cmd.Process.Pid
	start := now()
	c.w.recordProcess(c.spec.Name, pid)
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()

	c.mu.Lock()
	c.gen++
	gen := c.gen
	c.status.State = v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: start}}
	c.status.ContainerID = "flock-lab://" + strconv.Itoa(pid)
	c.status.Started = new(true)
	// Without a readiness probe a container is ready once it runs; init
	// containers are never ready until they complete.
	c.status.Ready = c.spec.ReadinessProbe == nil && !c.init
	c.mu.Unlock()
	c.w.notify()
	c.w.event(v1.EventTypeNormal, "Started", "Started container %s", c.spec.Name)

	pctx, stopProbe := context.WithCancel(ctx)
	if p := c.spec.ReadinessProbe; p != nil && !c.init {
		go runProber(pctx, paramsOf(p), c.w.probeFor(&c.spec, p, env),
			func(ready bool) { c.setReady(gen, ready) },
			func(err error) {
				c.w.event(v1.EventTypeWarning, "Unhealthy", "Readiness probe failed: %v", err)
			})
	}
	select {
	case <-exited:
	case <-ctx.Done():
		c.w.event(v1.EventTypeNormal, "Killing", "Stopping container %s", c.spec.Name)
		signalGroup(pid, syscall.SIGTERM)
		t := time.NewTimer(c.w.gracePeriod())
		select {
		case <-exited:
			t.Stop()
		case <-t.C:
			signalGroup(pid, syscall.SIGKILL)
			<-exited
		}
	}
	stopProbe()
	signalGroup(pid, syscall.SIGKILL) // whatever it left running in its group
	code = exitCode(cmd.ProcessState)
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	end := now()
	c.terminated(&start, code, reason, "", end)
	return code, end.Sub(start.Time)
}

func (c *container) terminated(start *metav1.Time, code int32, reason, msg string, end metav1.Time) {
	c.update(func(s *v1.ContainerStatus) {
		t := &v1.ContainerStateTerminated{ExitCode: code, Reason: reason, Message: msg, FinishedAt: end}
		if start != nil {
			t.StartedAt = *start
		}
		s.State = v1.ContainerState{Terminated: t}
		s.Ready, s.Started = false, new(false)
	})
}

// exitCode is the process's exit status, or 128+signal like a shell.
func exitCode(ps *os.ProcessState) int32 {
	if ps == nil {
		return 128
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(ps.ExitCode())
}

// runCmd runs a short-lived command (an exec probe) until it exits or ctx
// ends, killing its whole process group then.
func runCmd(ctx context.Context, cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		signalGroup(cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return errors.Join(ctx.Err(), errors.New("probe timed out"))
	}
}
