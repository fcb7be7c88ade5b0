package kubelet

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func readyNode(name string, heartbeat time.Time, mods ...func(*v1.Node)) *v1.Node {
	n := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: v1.NodeStatus{Conditions: []v1.NodeCondition{
			{Type: v1.NodeReady, Status: v1.ConditionTrue, LastHeartbeatTime: metav1.NewTime(heartbeat)},
		}},
	}
	for _, m := range mods {
		m(n)
	}
	return n
}

func pendingPod(name string, created time.Time, mods ...func(*v1.Pod)) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: "default", Name: name, UID: types.UID("uid-" + name), CreationTimestamp: metav1.NewTime(created),
	}}
	for _, m := range mods {
		m(p)
	}
	return p
}

func boundPod(name, node string) *v1.Pod {
	return pendingPod(name, t0, func(p *v1.Pod) { p.Spec.NodeName = node })
}

func result(bs []binding) map[string]string {
	out := map[string]string{}
	for _, b := range bs {
		out[b.Pod.Name] = b.Node
	}
	return out
}

func TestAssign(t *testing.T) {
	now := t0.Add(time.Hour)
	fresh := now.Add(-10 * time.Second)
	n1, n2, n3 := readyNode("node-1", fresh), readyNode("node-2", fresh), readyNode("node-3", fresh)
	for _, tc := range []struct {
		name  string
		nodes []*v1.Node
		pods  []*v1.Pod
		want  map[string]string
	}{
		{
			name:  "a batch goes round-robin in creation order",
			nodes: []*v1.Node{n2, n1},
			pods:  []*v1.Pod{pendingPod("d", t0.Add(3)), pendingPod("b", t0.Add(1)), pendingPod("a", t0), pendingPod("c", t0.Add(2))},
			want:  map[string]string{"a": "node-1", "b": "node-2", "c": "node-1", "d": "node-2"},
		},
		{
			name:  "equal creation times order by name",
			nodes: []*v1.Node{n1, n2},
			pods:  []*v1.Pod{pendingPod("y", t0), pendingPod("x", t0)},
			want:  map[string]string{"x": "node-1", "y": "node-2"},
		},
		{
			name:  "the least loaded node first",
			nodes: []*v1.Node{n1, n2, n3},
			pods:  []*v1.Pod{boundPod("old1", "node-1"), boundPod("old2", "node-1"), boundPod("old3", "node-2"), pendingPod("new1", t0.Add(time.Second)), pendingPod("new2", t0.Add(2*time.Second)), pendingPod("new3", t0.Add(3*time.Second))},
			want:  map[string]string{"new1": "node-3", "new2": "node-2", "new3": "node-3"},
		},
		{
			name:  "a pod re-created after a deletion fills the gap",
			nodes: []*v1.Node{n1, n2},
			pods:  []*v1.Pod{boundPod("a", "node-1"), boundPod("b", "node-2"), boundPod("d", "node-2"), pendingPod("c", t0.Add(time.Minute))},
			want:  map[string]string{"c": "node-1"},
		},
		{
			name:  "finished and deleting pods do not count, deleting pending pods are not bound",
			nodes: []*v1.Node{n1, n2},
			pods: []*v1.Pod{
				pendingPod("done", t0, func(p *v1.Pod) { p.Spec.NodeName, p.Status.Phase = "node-1", v1.PodSucceeded }),
				pendingPod("going", t0, func(p *v1.Pod) { p.Spec.NodeName, p.DeletionTimestamp = "node-1", &metav1.Time{Time: now} }),
				boundPod("live", "node-2"),
				pendingPod("gone", t0, func(p *v1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: now} }),
				pendingPod("new", t0),
			},
			want: map[string]string{"new": "node-1"},
		},
		{
			name: "not ready, stale, unschedulable and missing-condition nodes get nothing",
			nodes: []*v1.Node{
				readyNode("a-stale", now.Add(-2*time.Minute)),
				readyNode("b-notready", fresh, func(n *v1.Node) { n.Status.Conditions[0].Status = v1.ConditionFalse }),
				readyNode("c-cordoned", fresh, func(n *v1.Node) { n.Spec.Unschedulable = true }),
				{ObjectMeta: metav1.ObjectMeta{Name: "d-new"}},
				n2,
			},
			pods: []*v1.Pod{pendingPod("p", t0), pendingPod("q", t0)},
			want: map[string]string{"p": "node-2", "q": "node-2"},
		},
		{
			name:  "no node, no binding",
			nodes: []*v1.Node{readyNode("old", t0)},
			pods:  []*v1.Pod{pendingPod("p", t0)},
			want:  map[string]string{},
		},
		{
			name:  "nodeSelector",
			nodes: []*v1.Node{n1, n2},
			pods: []*v1.Pod{
				pendingPod("p", t0, func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": "node-2"} }),
				pendingPod("q", t0.Add(time.Second), func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": "node-2"} }),
				pendingPod("r", t0.Add(time.Second), func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "none"} }),
			},
			want: map[string]string{"p": "node-2", "q": "node-2"},
		},
		{
			name: "taints need a toleration, PreferNoSchedule does not",
			nodes: []*v1.Node{
				readyNode("node-1", fresh, func(n *v1.Node) {
					n.Spec.Taints = []v1.Taint{{Key: "dedicated", Value: "bgp", Effect: v1.TaintEffectNoSchedule}}
				}),
				readyNode("node-2", fresh, func(n *v1.Node) {
					n.Spec.Taints = []v1.Taint{{Key: "soft", Effect: v1.TaintEffectPreferNoSchedule}}
				}),
			},
			pods: []*v1.Pod{
				pendingPod("a", t0),
				pendingPod("b", t0.Add(time.Second)),
				pendingPod("c", t0.Add(2*time.Second), func(p *v1.Pod) {
					p.Spec.Tolerations = []v1.Toleration{{Key: "dedicated", Operator: v1.TolerationOpEqual, Value: "bgp", Effect: v1.TaintEffectNoSchedule}}
				}),
			},
			want: map[string]string{"a": "node-2", "b": "node-2", "c": "node-1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, result(assign(tc.nodes, tc.pods, now))); d != "" {
				t.Errorf("assignment (-want +got):\n%s", d)
			}
		})
	}
}

// TestAssignConverges simulates kubelet-lites binding concurrently: after
// any pod is bound to the node chosen for it, recomputing from the new view
// never moves another pending pod to a different node than the first view
// chose, whatever order the bindings land in; and the spread is even.
func TestAssignConverges(t *testing.T) {
	now := t0.Add(time.Hour)
	nodes := []*v1.Node{readyNode("node-1", now), readyNode("node-2", now), readyNode("node-3", now)}
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 1))
		var pods []*v1.Pod
		for i := range 12 {
			pods = append(pods, pendingPod(fmt.Sprintf("p%02d", i), t0.Add(time.Duration(r.IntN(4))*time.Second)))
		}
		first := result(assign(nodes, pods, now))
		for _, i := range r.Perm(len(pods)) {
			pods[i].Spec.NodeName = first[pods[i].Name]
			again := result(assign(nodes, pods, now))
			for name, node := range again {
				if first[name] != node {
					t.Fatalf("seed %d: after binding %s, %s moves from %s to %s", seed, pods[i].Name, name, first[name], node)
				}
			}
		}
		count := map[string]int{}
		for _, n := range first {
			count[n]++
		}
		if count["node-1"] != 4 || count["node-2"] != 4 || count["node-3"] != 4 {
			t.Fatalf("seed %d: uneven spread %v", seed, count)
		}
	}
}
