package kubelet

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	tA = metav1.NewTime(time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC))
	tB = metav1.NewTime(time.Date(2026, 1, 1, 10, 0, 7, 0, time.UTC))
)

func running(name string, ready bool) v1.ContainerStatus {
	return v1.ContainerStatus{Name: name, Image: "img", Ready: ready, Started: new(true), ContainerID: "flock-lab://1",
		State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: tA}}}
}

func waiting(name, reason string) v1.ContainerStatus {
	return v1.ContainerStatus{Name: name, Image: "img", Started: new(false),
		State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: reason}}}
}

func exited(name string, code int32) v1.ContainerStatus {
	return v1.ContainerStatus{Name: name, Image: "img", Started: new(false),
		State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: code}}}
}

func backingOff(name string, code int32) v1.ContainerStatus {
	s := waiting(name, "CrashLoopBackOff")
	s.LastTerminationState = exited(name, code).State
	return s
}

// conds reduces conditions to "Type=Status" for comparison.
func conds(st v1.PodStatus) map[v1.PodConditionType]string {
	m := map[v1.PodConditionType]string{}
	for _, c := range st.Conditions {
		m[c.Type] = string(c.Status) + " " + c.Reason + " " + c.Message
	}
	return m
}

func TestBuildStatus(t *testing.T) {
	scheduled := v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: tA}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u"},
		Spec:       v1.PodSpec{RestartPolicy: v1.RestartPolicyAlways},
		Status:     v1.PodStatus{Phase: v1.PodPending, QOSClass: v1.PodQOSBestEffort, Conditions: []v1.PodCondition{scheduled}},
	}
	hostIPs := []string{"2001:db8:1ab:1::2", "198.19.1.2"}

	// Sandbox in the making.
	st := buildStatus(pod, snapshot{HostIPs: hostIPs, StartTime: tA, Initialized: true,
		Containers: []v1.ContainerStatus{waiting("b", "ContainerCreating"), waiting("a", "ContainerCreating")}}, tA)
	if st.Phase != v1.PodPending || st.HostIP != hostIPs[0] || len(st.HostIPs) != 2 || st.PodIP != "" || st.StartTime == nil || st.QOSClass != v1.PodQOSBestEffort {
		t.Errorf("pending status: %+v", st)
	}
	if st.ContainerStatuses[0].Name != "a" {
		t.Errorf("container statuses not sorted by name: %v", st.ContainerStatuses)
	}
	want := map[v1.PodConditionType]string{
		v1.PodReadyToStartContainers: "False  ",
		v1.PodInitialized:            "True  ",
		v1.ContainersReady:           "False ContainersNotReady containers with unready status: [b a]",
		v1.PodReady:                  "False ContainersNotReady containers with unready status: [b a]",
		v1.PodScheduled:              "True  ",
	}
	if d := cmp.Diff(want, conds(st)); d != "" {
		t.Errorf("pending conditions (-want +got):\n%s", d)
	}

	// Running and ready, seven seconds later.
	pod.Status = st
	snap := snapshot{SandboxReady: true, PodIPs: []string{"2001:db8:42:1::a", "198.18.1.10"}, HostIPs: hostIPs, StartTime: tB, Initialized: true,
		Containers: []v1.ContainerStatus{running("a", true), running("b", true)}}
	st = buildStatus(pod, snap, tB)
	if st.Phase != v1.PodRunning || st.PodIP != "2001:db8:42:1::a" || len(st.PodIPs) != 2 || st.PodIPs[1].IP != "198.18.1.10" {
		t.Errorf("running status: %+v", st)
	}
	if !st.StartTime.Equal(&tA) {
		t.Errorf("start time moved to %v", st.StartTime)
	}
	for _, c := range st.Conditions {
		if c.Status != v1.ConditionTrue {
			t.Errorf("condition %s is %s", c.Type, c.Status)
		}
		wantT := tB
		if c.Type == v1.PodInitialized || c.Type == v1.PodScheduled {
			wantT = tA // unchanged since the first status
		}
		if !c.LastTransitionTime.Equal(&wantT) {
			t.Errorf("condition %s transition time %v, want %v", c.Type, c.LastTransitionTime, wantT)
		}
	}

	// A readiness gate keeps Ready false while ContainersReady is true.
	gated := pod.DeepCopy()
	gated.Spec.ReadinessGates = []v1.PodReadinessGate{{ConditionType: "example.com/lb"}}
	c := conds(buildStatus(gated, snap, tB))
	if c[v1.ContainersReady] != "True  " || c[v1.PodReady][:5] != "False" {
		t.Errorf("gated: %v", c)
	}
	gated.Status.Conditions = append(gated.Status.Conditions, v1.PodCondition{Type: "example.com/lb", Status: v1.ConditionTrue})
	if c := conds(buildStatus(gated, snap, tB)); c[v1.PodReady] != "True  " || c["example.com/lb"] == "" {
		t.Errorf("gate met: %v", c)
	}

	// A finished pod is not ready.
	done := pod.DeepCopy()
	done.Spec.RestartPolicy = v1.RestartPolicyNever
	snap.Containers = []v1.ContainerStatus{exited("a", 0), exited("b", 0)}
	st = buildStatus(done, snap, tB)
	if c := conds(st); st.Phase != v1.PodSucceeded || c[v1.PodReady] != "False PodCompleted " || c[v1.PodReadyToStartContainers][:5] != "False" {
		t.Errorf("finished: %s %v", st.Phase, c)
	}
}

func TestPodPhase(t *testing.T) {
	A, F, N := v1.RestartPolicyAlways, v1.RestartPolicyOnFailure, v1.RestartPolicyNever
	for _, tc := range []struct {
		name   string
		policy v1.RestartPolicy
		snap   snapshot
		want   v1.PodPhase
	}{
		{"not initialized", A, snapshot{Containers: []v1.ContainerStatus{waiting("a", "PodInitializing")}}, v1.PodPending},
		{"init failed", N, snapshot{InitFailed: true}, v1.PodFailed},
		{"creating", A, snapshot{Initialized: true, Containers: []v1.ContainerStatus{waiting("a", "ContainerCreating")}}, v1.PodPending},
		{"one running one creating", A, snapshot{Initialized: true, Containers: []v1.ContainerStatus{running("a", true), waiting("b", "ContainerCreating")}}, v1.PodPending},
		{"running", N, snapshot{Initialized: true, Containers: []v1.ContainerStatus{running("a", false), exited("b", 1)}}, v1.PodRunning},
		{"crash loop", A, snapshot{Initialized: true, Containers: []v1.ContainerStatus{backingOff("a", 1)}}, v1.PodRunning},
		{"always, all exited 0", A, snapshot{Initialized: true, Containers: []v1.ContainerStatus{backingOff("a", 0)}}, v1.PodRunning},
		{"on failure, all 0", F, snapshot{Initialized: true, Containers: []v1.ContainerStatus{exited("a", 0), exited("b", 0)}}, v1.PodSucceeded},
		{"on failure, one restarting", F, snapshot{Initialized: true, Containers: []v1.ContainerStatus{exited("a", 0), backingOff("b", 2)}}, v1.PodRunning},
		{"never, all 0", N, snapshot{Initialized: true, Containers: []v1.ContainerStatus{exited("a", 0)}}, v1.PodSucceeded},
		{"never, one failed", N, snapshot{Initialized: true, Containers: []v1.ContainerStatus{exited("a", 0), exited("b", 137)}}, v1.PodFailed},
	} {
		if got := podPhase(tc.policy, tc.snap); got != tc.want {
			t.Errorf("%s: phase %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestStatusPatch(t *testing.T) {
	old := v1.PodStatus{Phase: v1.PodPending, HostIP: "2001:db8::2", Conditions: []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue}}}
	new := *old.DeepCopy()
	new.Phase = v1.PodRunning
	new.PodIPs = []v1.PodIP{{IP: "2001:db8:42::1"}, {IP: "198.18.0.9"}}
	b, err := statusPatch("the-uid", old, new)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"metadata": map[string]any{"uid": "the-uid"},
		"status": map[string]any{
			"phase":  "Running",
			"podIPs": []any{map[string]any{"ip": "2001:db8:42::1"}, map[string]any{"ip": "198.18.0.9"}},
		},
	}
	// Strategic merge patches of merge-keyed lists carry an element order.
	delete(got["status"].(map[string]any), "$setElementOrder/podIPs")
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("patch %s (-want +got):\n%s", b, d)
	}
}

func TestAdoptContainer(t *testing.T) {
	A, F, N := v1.RestartPolicyAlways, v1.RestartPolicyOnFailure, v1.RestartPolicyNever
	run := running("c", true)
	run.RestartCount = 2
	for _, tc := range []struct {
		name      string
		policy    v1.RestartPolicy
		old       v1.ContainerStatus
		done      bool
		restarts  int32
		wantPhase v1.PodPhase // of a pod with just this container, before it runs again
	}{
		{"running, always: a restart", A, run, false, 3, v1.PodRunning},
		{"running, on failure: a restart", F, run, false, 3, v1.PodRunning},
		{"running, never: failed", N, run, true, 2, v1.PodFailed},
		{"succeeded, on failure: stays", F, exited("c", 0), true, 0, v1.PodSucceeded},
		{"failed, on failure: runs again", F, backingOff("c", 1), false, 0, v1.PodRunning},
		{"exited, always: runs again", A, exited("c", 0), false, 0, v1.PodRunning},
		{"never started", A, waiting("c", "ContainerCreating"), false, 0, v1.PodPending},
	} {
		c := newContainer(&worker{}, v1.Container{Name: "c"}, false, tc.policy, &tc.old)
		if c.done != tc.done || c.status.RestartCount != tc.restarts {
			t.Errorf("%s: done %v restarts %d, want %v %d", tc.name, c.done, c.status.RestartCount, tc.done, tc.restarts)
		}
		if got := podPhase(tc.policy, snapshot{Initialized: true, Containers: []v1.ContainerStatus{c.status}}); got != tc.wantPhase {
			t.Errorf("%s: phase %s, want %s", tc.name, got, tc.wantPhase)
		}
	}
}
