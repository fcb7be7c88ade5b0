package kubelet

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// maxGracePeriod caps a pod's termination grace period: lab pods are
// test servers, and `kubectl delete` should not wait 30 s for them.
const maxGracePeriod = 5 * time.Second

// NetnsAnnotation names the pod's network namespace (under /run/netns);
// `flock-lab exec` reads it.
const NetnsAnnotation = "lab.flock.fritzlab.net/netns"

// worker owns one pod on this node from its first sight to its deletion:
// sandbox, containers, probes, status, teardown. It runs in one goroutine
// (plus one per container and prober); everything else talks to it by
// updating its pod and poking it.
type worker struct {
	k       *kubelet
	uid     types.UID
	log     *slog.Logger
	rec     *podRecord // what is persisted; Netns and SandboxID never change
	adopted bool       // rec comes from a previous kubelet-lite run

	poke chan struct{}
	done chan struct{}

	inits, ctrs []*container

	mu          sync.Mutex
	pod         *v1.Pod // latest seen
	gone        bool    // the pod object no longer exists
	snap        snapshot
	warned      map[string]bool
	patched     *v1.Pod // the API's answer to the last status patch
	patchedFrom string  // the resourceVersion that patch was computed from
}

func newWorker(k *kubelet, pod *v1.Pod, rec *podRecord) *worker {
	w := &worker{
		k: k, uid: pod.UID, pod: pod, rec: rec, adopted: rec != nil,
		log:    k.log.With("pod", pod.Namespace+"/"+pod.Name, "uid", pod.UID),
		poke:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		warned: map[string]bool{},
	}
	if rec == nil {
		w.rec = &podRecord{UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name, PortMappings: portMappings(pod)}
		if !pod.Spec.HostNetwork {
			w.rec.Netns, w.rec.SandboxID = netnsName(k.cfg.PodNetnsPrefix, pod.UID), sandboxID(pod.UID)
		}
	}
	old := func(list []v1.ContainerStatus, name string) *v1.ContainerStatus {
		if i := slices.IndexFunc(list, func(s v1.ContainerStatus) bool { return s.Name == name }); w.adopted && i >= 0 {
			return &list[i]
		}
		return nil
	}
	podPolicy := pod.Spec.RestartPolicy
	if podPolicy == "" {
		podPolicy = v1.RestartPolicyAlways
	}
	initPolicy := v1.RestartPolicyOnFailure
	if podPolicy == v1.RestartPolicyNever {
		initPolicy = v1.RestartPolicyNever
	}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			w.inits = append(w.inits, newContainer(w, c, false, v1.RestartPolicyAlways, old(pod.Status.InitContainerStatuses, c.Name)))
			continue
		}
		w.inits = append(w.inits, newContainer(w, c, true, initPolicy, old(pod.Status.InitContainerStatuses, c.Name)))
	}
	for _, c := range pod.Spec.Containers {
		ctr := newContainer(w, c, false, podPolicy, old(pod.Status.ContainerStatuses, c.Name))
		if len(w.inits) > 0 && ctr.status.State.Waiting != nil {
			ctr.status.State.Waiting.Reason = "PodInitializing"
		}
		w.ctrs = append(w.ctrs, ctr)
	}
	w.snap = snapshot{HostIPs: k.hostIPs, StartTime: now(), Initialized: len(w.inits) == 0}
	return w
}

// update gives the worker the pod's latest state from the informer.
func (w *worker) update(pod *v1.Pod) {
	w.mu.Lock()
	w.pod = pod
	w.mu.Unlock()
	w.notify()
}

// markGone tells the worker the pod object was deleted.
func (w *worker) markGone() {
	w.mu.Lock()
	w.gone = true
	w.mu.Unlock()
	w.notify()
}

func (w *worker) notify() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

// terminating says whether the pod is being deleted or is gone.
func (w *worker) terminating() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gone || w.pod.DeletionTimestamp != nil
}

func (w *worker) finished() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod.Status.Phase == v1.PodSucceeded || w.pod.Status.Phase == v1.PodFailed
}

// run is the pod's life on this node.
func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	if !w.terminating() && !w.finished() && w.setupSandbox(ctx) {
		w.runPod(ctx)
	}
	if ctx.Err() != nil {
		// kubelet-lite stops: the processes are stopped, the sandbox and its
		// record stay for the next run to adopt.
		return
	}
	if !w.releaseSandbox(ctx) {
		return
	}
	for !w.terminating() { // a finished pod stays until it is deleted
		select {
		case <-ctx.Done():
			return
		case <-w.poke:
		}
	}
	_ = os.RemoveAll(w.logDir())
	if !w.isGone() {
		w.k.deletePod(ctx, w.rec.Namespace, w.rec.Name, w.uid)
	}
}

// runPod runs the containers and keeps the status current until the pod
// is deleted, finishes, or kubelet-lite stops; the containers are stopped
// when it returns.
func (w *worker) runPod(ctx context.Context) {
	cctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.runContainers(cctx) })
	defer func() { stop(); wg.Wait() }()
	resync := time.NewTicker(10 * time.Second) // retries a failed status patch
	defer resync.Stop()
	for {
		phase := w.syncStatus(ctx)
		if w.terminating() || ctx.Err() != nil || phase == v1.PodSucceeded || phase == v1.PodFailed {
			return
		}
		select {
		case <-ctx.Done():
		case <-w.poke:
		case <-resync.C:
		}
	}
}

// runContainers runs the init containers in order, then the containers.
func (w *worker) runContainers(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, c := range w.inits {
		if !c.init { // a sidecar runs alongside everything after it
			wg.Go(func() { c.loop(ctx) })
			continue
		}
		if !c.loop(ctx) {
			if ctx.Err() == nil {
				w.setSnap(func(s *snapshot) { s.InitFailed = true })
			}
			return
		}
	}
	w.setSnap(func(s *snapshot) { s.Initialized = true })
	for _, c := range w.ctrs {
		wg.Go(func() { c.loop(ctx) })
	}
}

func (w *worker) setSnap(f func(s *snapshot)) {
	w.mu.Lock()
	f(&w.snap)
	w.mu.Unlock()
	w.notify()
}

// snapshot collects the runtime state for buildStatus.
func (w *worker) snapshot() snapshot {
	w.mu.Lock()
	s := w.snap
	w.mu.Unlock()
	s.Init, s.Containers = nil, nil
	for _, c := range w.inits {
		s.Init = append(s.Init, c.snapshot())
	}
	for _, c := range w.ctrs {
		s.Containers = append(s.Containers, c.snapshot())
	}
	return s
}

// sleepCtx waits d; it returns false early when ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// sleep waits d; it returns false early when the pod is being deleted or
// ctx ends.
func (w *worker) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return !w.terminating()
		case <-w.poke:
			if w.terminating() {
				return false
			}
		}
	}
}

// event records an Event on the pod.
func (w *worker) event(typ, reason, format string, args ...any) {
	w.mu.Lock()
	pod := w.pod
	w.mu.Unlock()
	w.k.recorder.Eventf(pod, typ, reason, format, args...)
}

// commandFor is a container's environment and argv for its next run.
func (w *worker) commandFor(c *v1.Container) (env, argv []string, err error) {
	w.mu.Lock()
	pod, pe := w.pod, podEnv{BinDir: w.k.cfg.BinDir, PodIPs: w.snap.PodIPs, HostIPs: w.snap.HostIPs}
	w.mu.Unlock()
	env, warnings := containerEnv(pod, c, pe)
	for _, msg := range warnings {
		w.mu.Lock()
		first := !w.warned[msg]
		w.warned[msg] = true
		w.mu.Unlock()
		if first {
			w.event(v1.EventTypeWarning, "Unsupported", "%s", msg)
		}
	}
	argv, err = commandLine(c, env)
	return env, argv, err
}

// logDir holds the pod's container logs (one file per container, stdout
// and stderr together, appended across restarts).
func (w *worker) logDir() string {
	d := filepath.Join(w.k.cfg.StateDir, "logs", fmt.Sprintf("%s_%s_%s", w.rec.Namespace, w.rec.Name, w.uid))
	_ = os.MkdirAll(d, 0o755)
	return d
}

// recordProcess persists a started process, so a restarted kubelet-lite
// can stop it even if it outlived its parent.
func (w *worker) recordProcess(container string, pid int) {
	st, err := procStartTime(pid)
	if err != nil {
		return // already gone
	}
	w.mu.Lock()
	w.rec.Processes = slices.DeleteFunc(w.rec.Processes, func(p procRecord) bool { return p.Container == container })
	w.rec.Processes = append(w.rec.Processes, procRecord{Container: container, PID: pid, StartTime: st})
	rec := *w.rec
	w.mu.Unlock()
	if err := w.k.store.save(&rec); err != nil {
		w.log.Warn("record process", "container", container, "err", err)
	}
}

// gracePeriod is the pod's deletion grace period, capped.
func (w *worker) gracePeriod() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	g := int64(30)
	switch {
	case w.pod.DeletionGracePeriodSeconds != nil:
		g = *w.pod.DeletionGracePeriodSeconds
	case w.pod.Spec.TerminationGracePeriodSeconds != nil:
		g = *w.pod.Spec.TerminationGracePeriodSeconds
	}
	return min(time.Duration(g)*time.Second, maxGracePeriod)
}
