package kubelet

import (
	"context"
	"encoding/json"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// setupSandbox gives the pod its network: its namespace and a CNI ADD,
// retried with back-off (a Warning event FailedCreatePodSandBox for every
// failure) until it works, the pod is deleted or ctx ends.
func (w *worker) setupSandbox(ctx context.Context) bool {
	if w.rec.Netns == "" { // host network: the node's addresses
		w.setSnap(func(s *snapshot) { s.SandboxReady, s.PodIPs = true, w.k.hostIPs })
		return true
	}
	w.syncStatus(ctx) // Pending, with the host IP, while the sandbox is made
	delay := backoffMin
	for attempt := 0; ; attempt++ {
		ips, err := w.trySandbox(ctx, attempt == 0 && w.adopted)
		if err == nil {
			w.log.Info("pod sandbox ready", "netns", w.rec.Netns, "sandbox", w.rec.SandboxID[:12], "ips", ips)
			w.setSnap(func(s *snapshot) { s.SandboxReady, s.PodIPs = true, ips })
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		w.log.Warn("create pod sandbox", "err", err, "retry", delay)
		w.event(v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		if !w.sleep(ctx, delay) {
			return false
		}
		delay = min(2*delay, backoffMax)
	}
}

func (w *worker) trySandbox(ctx context.Context, adopt bool) ([]string, error) {
	if adopt {
		ips, err := w.k.net.adopt(ctx, w.rec)
		if err == nil {
			w.log.Info("adopted pod sandbox of a previous run", "netns", w.rec.Netns)
			return ips, nil
		}
		w.log.Info("cannot adopt pod sandbox, recreating it", "err", err)
		if err := w.k.net.teardown(ctx, w.rec); err != nil {
			return nil, err
		}
	}
	// Recorded before the namespace exists, so a crash cannot leak it.
	if err := w.k.store.save(w.recCopy()); err != nil {
		return nil, err
	}
	if err := w.k.host.createNetns(w.rec.Netns); err != nil {
		return nil, err
	}
	if err := w.annotateNetns(ctx); err != nil {
		w.log.Warn("annotate pod with its netns", "err", err)
	}
	return w.k.net.add(ctx, w.rec)
}

func (w *worker) recCopy() *podRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := *w.rec
	return &r
}

// annotateNetns records the namespace's name on the pod (a merge patch
// carrying the UID, so it cannot land on a re-created pod).
func (w *worker) annotateNetns(ctx context.Context) error {
	w.mu.Lock()
	have := w.pod.Annotations[NetnsAnnotation]
	w.mu.Unlock()
	if have == w.rec.Netns {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":         w.uid,
		"annotations": map[string]string{NetnsAnnotation: w.rec.Netns},
	}})
	if err != nil {
		return err
	}
	_, err = w.k.cs.CoreV1().Pods(w.rec.Namespace).Patch(ctx, w.rec.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("patch pod %s/%s: %w", w.rec.Namespace, w.rec.Name, err)
	}
	return nil
}

// releaseSandbox is CNI DEL and the namespace's removal, retried until it
// works or ctx ends; then the pod's record goes.
func (w *worker) releaseSandbox(ctx context.Context) bool {
	delay := backoffMin
	for {
		err := w.k.net.teardown(ctx, w.rec)
		if err == nil {
			if err := w.k.store.remove(w.uid); err != nil {
				w.log.Warn("forget pod", "err", err)
			}
			w.log.Info("pod sandbox released", "netns", w.rec.Netns)
			return true
		}
		w.log.Warn("release pod sandbox", "err", err, "retry", delay)
		w.event(v1.EventTypeWarning, "FailedKillPod", "error killing pod: %v", err)
		if !sleepCtx(ctx, delay) {
			return false
		}
		delay = min(2*delay, backoffMax)
	}
}

// syncStatus patches the pod's status when what kubelet-lite knows differs
// from what the API has, and returns the phase the API now has ("" when
// the patch failed; the caller's resync retries it).
func (w *worker) syncStatus(ctx context.Context) v1.PodPhase {
	w.mu.Lock()
	pod, gone := w.pod, w.gone
	if w.patched != nil && w.patchedFrom == pod.ResourceVersion {
		pod = w.patched // the informer has not seen the last patch yet
	}
	w.mu.Unlock()
	if gone {
		return ""
	}
	st := buildStatus(pod, w.snapshot(), now())
	if apiequality.Semantic.DeepEqual(st, pod.Status) {
		return st.Phase
	}
	patch, err := statusPatch(w.uid, pod.Status, st)
	if err != nil {
		w.log.Error("build status patch", "err", err)
		return ""
	}
	updated, err := w.k.cs.CoreV1().Pods(w.rec.Namespace).Patch(ctx, w.rec.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			w.log.Debug("patch pod status", "err", err)
		} else if ctx.Err() == nil {
			w.log.Warn("patch pod status", "err", fmt.Errorf("patch status of pod %s/%s: %w", w.rec.Namespace, w.rec.Name, err))
		}
		return ""
	}
	w.mu.Lock()
	w.patched, w.patchedFrom = updated, pod.ResourceVersion
	w.mu.Unlock()
	w.log.Debug("pod status patched", "phase", st.Phase, "patch", string(patch))
	return updated.Status.Phase
}
