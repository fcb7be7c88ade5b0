package kubelet

import (
	"context"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

// manager keeps one worker per pod of this node (level-triggered: the
// informer pokes, sync compares the cache with the workers).
type manager struct {
	k    *kubelet
	poke chan struct{}

	mu       sync.Mutex
	workers  map[types.UID]*worker
	deleting map[types.UID]time.Time // pods without a worker whose deletion was sent
	wg       sync.WaitGroup
}

func newManager(k *kubelet) *manager {
	return &manager{k: k, poke: make(chan struct{}, 1), workers: map[types.UID]*worker{}, deleting: map[types.UID]time.Time{}}
}

func (m *manager) notify() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// adopt starts a worker for every pod a previous run left a record of,
// after stopping any process of it that outlived that run and releasing
// (CNI GC) every attachment without a record. A worker whose pod is gone
// or being deleted only cleans up; the others keep their sandbox.
func (m *manager) adopt(ctx context.Context) {
	recs, errs := m.k.store.list()
	for _, err := range errs {
		m.k.log.Warn("read pod state", "err", err)
	}
	var keep []string
	for _, r := range recs {
		for _, p := range r.Processes {
			if st, err := procStartTime(p.PID); err == nil && st == p.StartTime {
				signalGroup(p.PID, syscall.SIGKILL)
			}
		}
		r.Processes = nil
		if r.SandboxID != "" {
			keep = append(keep, r.SandboxID)
		}
	}
	if err := m.k.net.gc(ctx, keep); err != nil {
		m.k.log.Warn("CNI GC", "err", err)
	}
	byUID := map[types.UID]*v1.Pod{}
	pods, _ := m.k.pods.List(labels.Everything())
	for _, p := range pods {
		byUID[p.UID] = p
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		pod, gone := byUID[r.UID], false
		if pod == nil {
			pod, gone = &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Name, UID: r.UID}}, true
		}
		w := newWorker(m.k, pod, r)
		w.gone = gone
		m.k.log.Info("found pod of a previous run", "pod", r.Namespace+"/"+r.Name, "uid", r.UID, "gone", gone)
		m.start(ctx, w)
	}
}

// start runs a worker; m.mu is held.
func (m *manager) start(ctx context.Context, w *worker) {
	m.workers[w.uid] = w
	m.wg.Go(func() {
		w.run(ctx)
		m.mu.Lock()
		delete(m.workers, w.uid)
		m.mu.Unlock()
		m.notify()
	})
}

// run syncs on every poke and every minute until ctx ends, then waits for
// the workers (which stop their containers).
func (m *manager) run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.wg.Wait()
			return
		case <-m.poke:
		case <-t.C:
		}
		m.sync(ctx)
	}
}

func (m *manager) sync(ctx context.Context) {
	pods, err := m.k.pods.List(labels.Everything())
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[types.UID]bool{}
	for _, p := range pods {
		if p.Spec.NodeName != m.k.cfg.NodeName {
			continue
		}
		seen[p.UID] = true
		if w := m.workers[p.UID]; w != nil {
			w.update(p)
			continue
		}
		switch {
		case p.DeletionTimestamp != nil:
			// Nothing of it runs here (any more): finish the deletion.
			if time.Since(m.deleting[p.UID]) > bindRetry {
				m.deleting[p.UID] = time.Now()
				go m.k.deletePod(ctx, p.Namespace, p.Name, p.UID)
			}
		case p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed:
			// Finished in an earlier run; nothing to run.
		default:
			m.start(ctx, newWorker(m.k, p, nil))
		}
	}
	for uid, w := range m.workers {
		if !seen[uid] && !w.isGone() {
			w.markGone()
		}
	}
	for uid := range m.deleting {
		if !seen[uid] {
			delete(m.deleting, uid)
		}
	}
}

func (w *worker) isGone() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gone
}

// deletePod removes the pod object once nothing of it runs on the node:
// grace period 0 with a UID precondition, what kubelet sends, so
// `kubectl delete pod` completes and a re-created pod is never hit.
func (k *kubelet) deletePod(ctx context.Context, namespace, name string, uid types.UID) {
	err := k.cs.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64(0)),
		Preconditions:      metav1.NewUIDPreconditions(string(uid)),
	})
	switch {
	case err == nil:
		k.log.Info("pod deleted", "pod", namespace+"/"+name, "uid", uid)
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
	default:
		if ctx.Err() == nil {
			k.log.Warn("delete pod", "pod", namespace+"/"+name, "err", err)
		}
	}
}
