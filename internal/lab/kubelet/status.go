package kubelet

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// snapshot is what kubelet-lite knows about a pod at run time; the pod's
// status is a function of it (buildStatus).
type snapshot struct {
	SandboxReady bool
	PodIPs       []string // primary family first
	HostIPs      []string
	StartTime    metav1.Time
	Initialized  bool // every init container completed (or, for sidecars, started)
	InitFailed   bool // an init container failed and will not be retried
	Init         []v1.ContainerStatus
	Containers   []v1.ContainerStatus
}

// now is the current time as the API server stores it (whole seconds), so
// a status built twice from the same state compares equal to what the
// server returned.
func now() metav1.Time { return metav1.NewTime(time.Now()).Rfc3339Copy() }

// buildStatus is the pod's status with everything kubelet owns replaced
// from the snapshot; conditions of other types (readiness gates, the
// scheduler's PodScheduled) are kept, and a condition's transition time
// only moves when its status changes.
func buildStatus(pod *v1.Pod, s snapshot, t metav1.Time) v1.PodStatus {
	st := *pod.Status.DeepCopy()
	if len(s.HostIPs) > 0 {
		st.HostIP = s.HostIPs[0]
		st.HostIPs = nil
		for _, ip := range s.HostIPs {
			st.HostIPs = append(st.HostIPs, v1.HostIP{IP: ip})
		}
	}
	if len(s.PodIPs) > 0 {
		st.PodIP = s.PodIPs[0]
		st.PodIPs = nil
		for _, ip := range s.PodIPs {
			st.PodIPs = append(st.PodIPs, v1.PodIP{IP: ip})
		}
	}
	if st.StartTime == nil && !s.StartTime.IsZero() {
		st.StartTime = s.StartTime.DeepCopy()
	}
	st.InitContainerStatuses = slices.Clone(s.Init)
	st.ContainerStatuses = slices.Clone(s.Containers)
	// kubelet lists containers by name, init containers in spec order.
	slices.SortFunc(st.ContainerStatuses, func(a, b v1.ContainerStatus) int { return strings.Compare(a.Name, b.Name) })
	st.Phase = podPhase(pod.Spec.RestartPolicy, s)
	terminal := st.Phase == v1.PodSucceeded || st.Phase == v1.PodFailed

	setCondition(&st, v1.PodCondition{Type: v1.PodReadyToStartContainers, Status: boolCond(s.SandboxReady && !terminal)}, t)

	init := v1.PodCondition{Type: v1.PodInitialized, Status: boolCond(s.Initialized)}
	if !s.Initialized {
		init.Reason = "ContainersNotInitialized"
		init.Message = fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(notDone(s.Init), " "))
	}
	setCondition(&st, init, t)

	ready := v1.PodCondition{Type: v1.ContainersReady, Status: v1.ConditionTrue}
	if unready := unreadyNames(s.Containers); terminal || len(unready) > 0 {
		ready.Status, ready.Reason = v1.ConditionFalse, "ContainersNotReady"
		ready.Message = fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
		if terminal {
			ready.Reason, ready.Message = "PodCompleted", ""
		}
	}
	setCondition(&st, ready, t)

	podReady := ready
	podReady.Type = v1.PodReady
	if ready.Status == v1.ConditionTrue {
		for _, g := range pod.Spec.ReadinessGates {
			if c := condition(&st, g.ConditionType); c == nil || c.Status != v1.ConditionTrue {
				podReady.Status, podReady.Reason = v1.ConditionFalse, "ReadinessGatesNotReady"
				podReady.Message = fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist or is not True", g.ConditionType)
				break
			}
		}
	}
	setCondition(&st, podReady, t)

	if condition(&st, v1.PodScheduled) == nil {
		setCondition(&st, v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionTrue}, t)
	}
	return st
}

// podPhase follows kubelet's getPhase: a container that has not run yet
// keeps the pod Pending; one waiting to restart counts as stopped.
func podPhase(policy v1.RestartPolicy, s snapshot) v1.PodPhase {
	if s.InitFailed {
		return v1.PodFailed
	}
	if !s.Initialized {
		return v1.PodPending
	}
	var waiting, running, stopped, succeeded int
	for _, cs := range s.Containers {
		term := cs.State.Terminated
		if term == nil && cs.State.Waiting != nil {
			term = cs.LastTerminationState.Terminated
		}
		switch {
		case cs.State.Running != nil:
			running++
		case term != nil:
			stopped++
			if term.ExitCode == 0 {
				succeeded++
			}
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return v1.PodPending
	case running > 0:
		return v1.PodRunning
	case stopped == 0:
		return v1.PodPending
	case policy == v1.RestartPolicyAlways:
		return v1.PodRunning
	case stopped == succeeded:
		return v1.PodSucceeded
	case policy == v1.RestartPolicyOnFailure:
		return v1.PodRunning
	}
	return v1.PodFailed
}

func boolCond(b bool) v1.ConditionStatus {
	if b {
		return v1.ConditionTrue
	}
	return v1.ConditionFalse
}

func condition(st *v1.PodStatus, t v1.PodConditionType) *v1.PodCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setCondition sets c, keeping the old transition time when the status
// did not change.
func setCondition(st *v1.PodStatus, c v1.PodCondition, t metav1.Time) {
	c.LastTransitionTime = t
	if old := condition(st, c.Type); old != nil {
		if old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		c.LastProbeTime = old.LastProbeTime
		*old = c
		return
	}
	st.Conditions = append(st.Conditions, c)
}

func unreadyNames(cs []v1.ContainerStatus) []string {
	var out []string
	for _, c := range cs {
		if !c.Ready {
			out = append(out, c.Name)
		}
	}
	return out
}

func notDone(cs []v1.ContainerStatus) []string {
	var out []string
	for _, c := range cs {
		if c.State.Terminated == nil || c.State.Terminated.ExitCode != 0 {
			out = append(out, c.Name)
		}
	}
	return out
}

// statusPatch is the strategic merge patch from old to new status, with
// the pod's UID in it so the API server rejects it for a pod re-created
// under the same name (what kubelet sends to pods/status).
func statusPatch(uid types.UID, old, new v1.PodStatus) ([]byte, error) {
	oldData, err := json.Marshal(v1.Pod{Status: old})
	if err != nil {
		return nil, err
	}
	newData, err := json.Marshal(v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid}, Status: new})
	if err != nil {
		return nil, err
	}
	return strategicpatch.CreateTwoWayMergePatch(oldData, newData, v1.Pod{})
}
