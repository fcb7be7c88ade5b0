package lab

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab"
	"github.com/fritzlab/flock/pkg/admin"
)

// TestLab: two nodes, four pods; every pair reaches every other over IPv6
// and IPv4 through the router; a deleted pod leaves nothing on its node; a
// pod re-created with ip-algo hash gets its old IPv6 address; down leaves
// the machine as it was.
func TestLab(t *testing.T) {
	beforeLinks := rootLinks()
	e := up(t, 2)
	prefix := e.lab.Prefix + "-"
	if got := netnsList(prefix); len(got) < 3 {
		t.Errorf("lab namespaces %v, want a router and two nodes", got)
	}
	if got := labProcesses(e.lab.RunDir, e.lab.StateDir, prefix); len(got) < 5 {
		t.Errorf("lab processes %v, want at least the control plane and two agents", got)
	}
	ctx := context.Background()

	// Every NodeConfig is owned by its Node, so deleting the Node deletes
	// it where a garbage collector runs; accepted (no two pools overlap).
	for _, node := range []string{"node-1", "node-2"} {
		n, err := e.cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := e.dyn().Resource(v1alpha1.NodeConfigGVR).Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := []metav1.OwnerReference{v1alpha1.NodeOwnerReference(node, n.UID)}
		if diff := cmp.Diff(want, nc.GetOwnerReferences()); diff != "" || n.UID == "" {
			t.Errorf("NodeConfig %s owner references (-want +got):\n%s", node, diff)
		}
	}

	const port = 8080
	names := []string{"p1", "p2", "p3", "p4"}
	for _, n := range names {
		e.create(servePod("default", n, nil, port))
	}
	pods := map[string]*corev1.Pod{}
	nodes := map[string]bool{}
	for _, n := range names {
		pods[n] = e.waitReady("default", n)
		nodes[pods[n].Spec.NodeName] = true
	}
	if len(nodes) != 2 {
		t.Errorf("4 pods landed on %d nodes, want both", len(nodes))
	}
	for _, src := range names {
		for _, dst := range names {
			if src == dst {
				continue
			}
			v6, v4 := podAddrs(pods[dst])
			for _, a := range []netip.Addr{v6, v4} {
				got, err := e.tcpAsk(pods[src], a, port)
				if err != nil || got != "default/"+dst {
					t.Errorf("%s (%s) -> %s at %s: %q %v", src, pods[src].Spec.NodeName, dst, a, got, err)
				}
			}
		}
	}

	// Deleting a pod frees its addresses and leaves nothing on its node.
	gone := pods["p4"]
	v6, v4 := podAddrs(gone)
	e.deleteAndWait("default", "p4")
	nodeNs, err := e.lab.NodeNetns(gone.Spec.NodeName)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{v6.String(), v4.String()} {
		if out, _ := inNetns(nodeNs, "ip", "route", "show", "match", a, "proto", "83"); strings.Contains(out, "dev flock") {
			t.Errorf("route to deleted pod's %s left on %s: %s", a, gone.Spec.NodeName, out)
		}
	}
	if out, _ := inNetns(nodeNs, "ip", "-o", "link", "show", "type", "veth"); strings.Count(out, ": flock") != countOn(pods, gone.Spec.NodeName)-1 {
		t.Errorf("veths on %s after deleting p4:\n%s", gone.Spec.NodeName, out)
	}

	// ip-algo hash: the same pod name on the same node pool comes back on
	// its old IPv6 address.
	hashPod := servePod("default", "stateful-0", map[string]string{"flock.fritzlab.net/ip-algo": "hash"}, port)
	hashPod.Spec.NodeName = e.lab.Nodes[0].Name
	e.create(hashPod.DeepCopy())
	first, _ := podAddrs(e.waitReady("default", "stateful-0"))
	e.deleteAndWait("default", "stateful-0")
	e.create(hashPod.DeepCopy())
	second, _ := podAddrs(e.waitReady("default", "stateful-0"))
	if first != second {
		t.Errorf("ip-algo hash pod came back on %s, was %s", second, first)
	}

	// The agents posted their Node condition.
	nodeList, err := e.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodeList.Items {
		ok := false
		for _, c := range n.Status.Conditions {
			ok = ok || (c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionFalse && c.Reason == "FlockReady")
		}
		if !ok {
			t.Errorf("node %s lacks NetworkUnavailable=False/FlockReady: %+v", n.Name, n.Status.Conditions)
		}
	}

	// flock-lab down leaves the machine as it found it.
	if err := lab.Down(ctx, e.lab.Options); err != nil {
		t.Fatal(err)
	}
	if after := netnsList(prefix); len(after) > 0 {
		t.Errorf("network namespaces left after down: %v", after)
	}
	if after := rootLinks(); after != beforeLinks {
		t.Errorf("links after down: %s, before: %s", after, beforeLinks)
	}
	if after := labProcesses(e.lab.RunDir, e.lab.StateDir, prefix); len(after) > 0 {
		t.Errorf("lab processes left after down: %v", after)
	}
	if _, err := os.Stat(e.lab.RunDir); !os.IsNotExist(err) {
		t.Errorf("lab run directory left after down: %v", err)
	}
}

func countOn(pods map[string]*corev1.Pod, node string) int {
	n := 0
	for _, p := range pods {
		if p.Spec.NodeName == node {
			n++
		}
	}
	return n
}

// TestDemo runs what `make lab` shows after bringing the lab up: the
// example pods and Service, every cross-node pair and the Service's
// ClusterIPs from every pod; then flockctl on each node, as the README
// shows it.
func TestDemo(t *testing.T) {
	e := up(t, 2)
	var out strings.Builder
	err := e.lab.Demo(context.Background(), &out)
	t.Logf("flock-lab demo:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Service default/web") || strings.Contains(out.String(), "FAILED") {
		t.Errorf("the demo did not check the Service, or a check failed")
	}

	// flockctl, as the README shows it for a lab node: each node's agent
	// lists its demo pods, and both BGP sessions to the router are up.
	pods, err := e.cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range e.lab.Nodes {
		ctl := func(args ...string) []byte {
			t.Helper()
			args = append([]string{"--socket", filepath.Join(n.Dir, "admin.sock")}, args...)
			out, err := exec.Command(filepath.Join(e.lab.BinDir, "flockctl"), args...).Output()
			if err != nil {
				t.Fatalf("flockctl %s on %s: %v", strings.Join(args, " "), n.Name, err)
			}
			return out
		}
		var allocs admin.Allocations
		if err := json.Unmarshal(ctl("pods", "-o", "json"), &allocs); err != nil {
			t.Fatal(err)
		}
		var want, got []string
		for _, p := range pods.Items {
			if p.Spec.NodeName == n.Name {
				want = append(want, p.Name)
			}
		}
		for _, a := range allocs.Items {
			got = append(got, a.Name)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			t.Errorf("flockctl pods on %s: %v, want %v", n.Name, got, want)
		}
		var bgp admin.BGP
		if err := json.Unmarshal(ctl("bgp", "-o", "json"), &bgp); err != nil {
			t.Fatal(err)
		}
		up := 0
		for _, s := range bgp.Sessions {
			if s.Established {
				up++
			}
		}
		if up != 2 || len(bgp.Sessions) != 2 {
			t.Errorf("flockctl bgp on %s: %d of %d sessions established, want 2 of 2:\n%s", n.Name, up, len(bgp.Sessions), ctl("bgp"))
		}
	}
}
