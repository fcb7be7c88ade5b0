package lab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/internal/lab"
	"github.com/fritzlab/flock/pkg/admin"
)

// allocations lists what a node's agent holds.
func (e *env) allocations(node string) []admin.Allocation {
	e.t.Helper()
	n, _ := e.lab.Node(node)
	var allocs admin.Allocations
	if err := admin.NewClient(filepath.Join(n.Dir, "admin.sock"), 5*time.Second).Get(context.Background(), "/v1/allocations", &allocs); err != nil {
		e.t.Fatalf("allocations of %s: %v", node, err)
	}
	return allocs.Items
}

func (e *env) sandboxes(node string) []string {
	e.t.Helper()
	boxes, err := e.lab.Sandboxes(context.Background(), node)
	if err != nil {
		e.t.Fatalf("sandboxes of %s: %v", node, err)
	}
	return boxes
}

// TestRealSandboxLifecycle: 20 pods through kubelet, containerd's CRI and
// the flock plugin containerd runs, each with its own addresses; once they
// are deleted, containerd lists no sandbox and the node has no allocation,
// no pod veth and no host route of flock's left.
func TestRealSandboxLifecycle(t *testing.T) {
	e := upWith(t, 1, lab.RuntimeReal)
	const n = 20
	for i := range n {
		e.create(servePod("default", fmt.Sprintf("life-%d", i), nil, 8080))
	}
	seen := map[netip.Addr]string{}
	for i := range n {
		p := e.waitReady("default", fmt.Sprintf("life-%d", i))
		v6, v4 := podAddrs(p)
		for _, a := range []netip.Addr{v6, v4} {
			if !a.IsValid() {
				t.Fatalf("%s has podIPs %v, want both families", p.Name, p.Status.PodIPs)
			}
			if other, dup := seen[a]; dup {
				t.Errorf("%s and %s both have %s", other, p.Name, a)
			}
			seen[a] = p.Name
		}
	}
	if got := e.allocations("node-1"); len(got) != n {
		t.Errorf("node-1's agent holds %d allocations with %d pods running, want %d", len(got), n, n)
	}
	if got := e.sandboxes("node-1"); len(got) != n {
		t.Errorf("containerd lists %d sandboxes with %d pods running, want %d: %v", len(got), n, n, got)
	}

	for i := range n {
		if err := e.cs.CoreV1().Pods("default").Delete(context.Background(), fmt.Sprintf("life-%d", i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 2*time.Minute, "every pod deleted", func() (bool, string) {
		pods, err := e.cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(pods.Items) == 0, fmt.Sprintf("%d pods left", len(pods.Items))
	})
	// kubelet removes the stopped sandboxes of deleted pods in its
	// container GC (once a minute).
	waitFor(t, 3*time.Minute, "containerd removes every sandbox", func() (bool, string) {
		boxes := e.sandboxes("node-1")
		return len(boxes) == 0, strings.Join(boxes, "\n")
	})
	if got := e.allocations("node-1"); len(got) != 0 {
		t.Errorf("allocations left after every pod is gone: %+v", got)
	}
	nodeNs, _ := e.lab.NodeNetns("node-1")
	if out, _ := inNetns(nodeNs, "ip", "-o", "link", "show", "type", "veth"); strings.Contains(out, "flock") {
		t.Errorf("pod veths left on node-1:\n%s", out)
	}
	for _, fam := range []string{"-6", "-4"} {
		out, _ := inNetns(nodeNs, "ip", fam, "route", "show", "proto", "83")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line != "" && !strings.HasPrefix(line, "blackhole") {
				t.Errorf("flock route left on node-1: %s", line)
			}
		}
	}
}

// TestRealContainerdRestart: containerd stops and starts again under
// running pods; they keep their sandboxes, addresses and traffic, and
// kubelet neither restarts their containers nor makes new sandboxes.
func TestRealContainerdRestart(t *testing.T) {
	e := upWith(t, 2, lab.RuntimeReal)
	const port = 8080
	a, b := servePod("default", "keep-a", nil, port), servePod("default", "keep-b", nil, port)
	a.Spec.NodeName, b.Spec.NodeName = "node-1", "node-2"
	e.create(a)
	e.create(b)
	pa, pb := e.waitReady("default", "keep-a"), e.waitReady("default", "keep-b")
	check := func(when string) {
		t.Helper()
		v6, v4 := podAddrs(pb)
		for _, addr := range []netip.Addr{v6, v4} {
			if got, err := e.tcpAsk(pa, addr, port); err != nil || got != "default/keep-b" {
				t.Errorf("%s: keep-a -> keep-b at %s: %q %v", when, addr, got, err)
			}
		}
	}
	check("before the restart")
	before := e.sandboxes("node-1")
	if err := e.lab.RestartContainerd(context.Background(), "node-1"); err != nil {
		t.Fatal(err)
	}
	check("right after the restart")
	// Give kubelet a few of its sync periods to act on the restart.
	time.Sleep(15 * time.Second)
	check("15 s after the restart")
	if after := e.sandboxes("node-1"); !slices.Equal(before, after) {
		t.Errorf("sandboxes changed across the restart:\nbefore %v\nafter  %v", before, after)
	}
	now, err := e.cs.CoreV1().Pods("default").Get(context.Background(), "keep-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(now.Status.PodIPs, pa.Status.PodIPs) {
		t.Errorf("keep-a's addresses changed: %v, was %v", now.Status.PodIPs, pa.Status.PodIPs)
	}
	if rc := now.Status.ContainerStatuses[0].RestartCount; rc != 0 {
		t.Errorf("keep-a's container restarted %d times across containerd's restart", rc)
	}
	if got := e.allocations("node-1"); len(got) != 1 {
		t.Errorf("node-1 holds %d allocations, want keep-a's alone: %+v", len(got), got)
	}
}

// TestRealCNIFailureEvent: a pod that asks for neither family fails CNI ADD;
// kubelet reports flock's own error text in the pod's FailedCreatePodSandbox
// event, and nothing is left allocated.
func TestRealCNIFailureEvent(t *testing.T) {
	e := upWith(t, 1, lab.RuntimeReal)
	p := servePod("default", "nofamily", map[string]string{
		"flock.fritzlab.net/ipv6": "false",
		"flock.fritzlab.net/ipv4": "false",
	}, 8080)
	e.create(p)
	const want = "pod gets no address family"
	waitFor(t, 2*time.Minute, "a FailedCreatePodSandbox event naming flock's error", func() (bool, string) {
		evs, err := e.cs.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=nofamily",
		})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, ev := range evs.Items {
			if ev.Reason == "FailedCreatePodSandBox" && strings.Contains(ev.Message, want) {
				return true, ""
			}
			seen = append(seen, ev.Reason+": "+ev.Message)
		}
		return false, strings.Join(seen, "\n")
	})
	got, err := e.cs.CoreV1().Pods("default").Get(context.Background(), "nofamily", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.PodPending || len(got.Status.PodIPs) != 0 {
		t.Errorf("pod with no family: phase %s, podIPs %v; want Pending without addresses", got.Status.Phase, got.Status.PodIPs)
	}
	if allocs := e.allocations("node-1"); len(allocs) != 0 {
		t.Errorf("a failed ADD left allocations: %+v", allocs)
	}
}
