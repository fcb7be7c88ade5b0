package kubelet

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/internal/lab/controlplane"
)

// TestKubeletLite runs kubelet-lite against a real API server, a real
// agent and the real plugins, through a pod's whole life and a restart of
// kubelet-lite itself.
func TestKubeletLite(t *testing.T) {
	e := setup(t)
	var web *v1.Pod

	t.Run("a pending pod is bound, addressed, ready and reachable", func(t *testing.T) {
		e.t = t
		if _, err := e.cs.CoreV1().Pods("default").Create(e.ctx, servePod("web"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		web = e.waitPod("web", "ready", podReady)
		checkAddressed(t, web)
		if web.Annotations[NetnsAnnotation] == "" || !netnsLive(web.Annotations[NetnsAnnotation]) {
			t.Errorf("netns annotation %q does not name a live namespace", web.Annotations[NetnsAnnotation])
		}
		if n := e.allocations(); n != 1 {
			t.Errorf("%d allocations, want 1", n)
		}
		for _, network := range []string{"tcp", "udp"} {
			for _, ip := range web.Status.PodIPs {
				if line, err := e.ask(network, "["+ip.IP+"]:8080"); err != nil || line != "default/web\n" {
					t.Errorf("%s to %s: %q, %v", network, ip.IP, line, err)
				}
			}
		}
		for _, hostIP := range e.cfg.HostIPs {
			addr := net.JoinHostPort(hostIP, strconv.Itoa(hostPort))
			if line, err := e.ask("tcp", addr); err != nil || line != "default/web\n" {
				t.Errorf("hostPort %s: %q, %v", addr, line, err)
			}
		}
		if ev := e.events("web"); !strings.Contains(ev, "flock-lab-scheduler Scheduled") || strings.Contains(ev, "FailedCreatePodSandBox") {
			t.Errorf("events:\n%s", ev)
		}
		node, err := e.cs.CoreV1().Nodes().Get(e.ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c := nodeCondition(node, v1.NodeReady); c == nil || c.Status != v1.ConditionTrue || c.Reason != "KubeletReady" {
			t.Errorf("node Ready condition %+v", c)
		}
		if len(node.Status.Addresses) != 3 || node.Status.NodeInfo.KubeletVersion != kubeletVersion {
			t.Errorf("node status addresses %v, info %+v", node.Status.Addresses, node.Status.NodeInfo)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("a restarted kubelet-lite adopts the pod", func(t *testing.T) {
		e.t = t
		pids := containerPIDs(web)
		e.stop()
		for _, pid := range pids {
			if controlplane.PidAlive(pid, "") {
				t.Errorf("container process %d still runs after kubelet-lite stopped", pid)
			}
		}
		node, _ := e.cs.CoreV1().Nodes().Get(e.ctx, "node-1", metav1.GetOptions{})
		if c := nodeCondition(node, v1.NodeReady); c == nil || c.Status != v1.ConditionFalse {
			t.Errorf("node Ready after stop: %+v", c)
		}
		e.start()
		again := e.waitPod("web", "restarted and ready", func(p *v1.Pod) bool {
			return podReady(p) && len(p.Status.ContainerStatuses) == 2 && p.Status.ContainerStatuses[0].RestartCount == 1
		})
		if again.Status.PodIP != web.Status.PodIP || again.Annotations[NetnsAnnotation] != web.Annotations[NetnsAnnotation] {
			t.Errorf("adopted pod changed address or namespace: %s %s, was %s %s",
				again.Status.PodIP, again.Annotations[NetnsAnnotation], web.Status.PodIP, web.Annotations[NetnsAnnotation])
		}
		if n := e.allocations(); n != 1 {
			t.Errorf("%d allocations after the restart, want 1", n)
		}
		if line, err := e.ask("tcp", "["+again.Status.PodIP+"]:8080"); err != nil || line != "default/web\n" {
			t.Errorf("after restart: %q, %v", line, err)
		}
		web = again
	})

	t.Run("deleting the pod frees everything", func(t *testing.T) {
		e.t = t
		pids := containerPIDs(web)
		if err := e.cs.CoreV1().Pods("default").Delete(e.ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		e.waitGone("web")
		if netnsLive(web.Annotations[NetnsAnnotation]) {
			t.Errorf("netns %s left behind", web.Annotations[NetnsAnnotation])
		}
		if n := e.allocations(); n != 0 {
			t.Errorf("%d allocations left", n)
		}
		for _, pid := range pids {
			if controlplane.PidAlive(pid, "") {
				t.Errorf("process %d left running", pid)
			}
		}
		if _, err := os.Stat(filepath.Join(e.cfg.StateDir, "pods", string(web.UID)+".json")); !os.IsNotExist(err) {
			t.Errorf("pod record left: %v", err)
		}
	})

	t.Run("pods deleted while kubelet-lite is down are cleaned up when it starts", func(t *testing.T) {
		e.t = t
		var netns []string
		for _, name := range []string{"left-a", "left-b"} {
			p := &v1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
				Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "x", Command: []string{"sleep", "1000"}}}},
			}
			if _, err := e.cs.CoreV1().Pods("default").Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			netns = append(netns, e.waitPod(name, "ready", podReady).Annotations[NetnsAnnotation])
		}
		e.stop()
		// left-a waits for its kubelet; left-b is removed at once.
		if err := e.cs.CoreV1().Pods("default").Delete(e.ctx, "left-a", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := e.cs.CoreV1().Pods("default").Delete(e.ctx, "left-b", metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
			t.Fatal(err)
		}
		e.waitGone("left-b")
		if n := e.allocations(); n != 2 {
			t.Fatalf("%d allocations while kubelet-lite is down, want 2", n)
		}
		e.start()
		e.waitGone("left-a")
		deadline := time.Now().Add(10 * time.Second)
		for e.allocations() != 0 || netnsLive(netns[0]) || netnsLive(netns[1]) {
			if time.Now().After(deadline) {
				t.Fatalf("left behind: %d allocations, netns %v %v", e.allocations(), netnsLive(netns[0]), netnsLive(netns[1]))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("a failing CNI ADD is reported and retried", func(t *testing.T) {
		e.t = t
		e.node.StopAgent(false)
		p := servePod("late")
		p.Spec.NodeName = "node-1" // bound by its creator: no Binding needed
		if _, err := e.cs.CoreV1().Pods("default").Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(e.events("late"), "Warning kubelet FailedCreatePodSandBox") {
			if time.Now().After(deadline) {
				t.Fatalf("no FailedCreatePodSandBox event; events:\n%s", e.events("late"))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := e.node.StartAgent(); err != nil {
			t.Fatal(err)
		}
		late := e.waitPod("late", "ready after the agent returned", podReady)
		checkAddressed(t, late)
		if n := e.allocations(); n != 1 {
			t.Errorf("%d allocations, want 1 (failed attempts must not leak)", n)
		}
		if err := e.cs.CoreV1().Pods("default").Delete(e.ctx, "late", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		e.waitGone("late")
		if n := e.allocations(); n != 0 {
			t.Errorf("%d allocations left", n)
		}
	})

	t.Run("restart policies", func(t *testing.T) {
		e.t = t
		crash := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "crash"},
			Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "x", Command: []string{"sh", "-c", "echo crashing; exit 3"}}}},
		}
		once := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "once"},
			Spec: v1.PodSpec{RestartPolicy: v1.RestartPolicyNever,
				Containers: []v1.Container{{Name: "c", Image: "x", Command: []string{"true"}}}},
		}
		for _, p := range []*v1.Pod{crash, once} {
			if _, err := e.cs.CoreV1().Pods("default").Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		got := e.waitPod("crash", "restarted twice and backing off", func(p *v1.Pod) bool {
			if len(p.Status.ContainerStatuses) != 1 {
				return false
			}
			cs := p.Status.ContainerStatuses[0]
			return cs.RestartCount >= 2 && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
		})
		cs := got.Status.ContainerStatuses[0]
		if last := cs.LastTerminationState.Terminated; last == nil || last.ExitCode != 3 || got.Status.Phase != v1.PodRunning || podReady(got) {
			t.Errorf("crashing pod: phase %s, container %+v", got.Status.Phase, cs)
		}
		log, _ := os.ReadFile(filepath.Join(e.cfg.StateDir, "logs", "default_crash_"+string(got.UID), "c.log"))
		if strings.Count(string(log), "crashing\n") < 2 {
			t.Errorf("container log %q", log)
		}
		done := e.waitPod("once", "succeeded", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded })
		deadline := time.Now().Add(10 * time.Second)
		for netnsLive(done.Annotations[NetnsAnnotation]) || e.allocations() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("finished pod's sandbox not released: netns live %v, %d allocations (want only crash's)",
					netnsLive(done.Annotations[NetnsAnnotation]), e.allocations())
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, name := range []string{"crash", "once"} {
			if err := e.cs.CoreV1().Pods("default").Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			e.waitGone(name)
		}
		if n := e.allocations(); n != 0 {
			t.Errorf("%d allocations left", n)
		}
	})

	t.Run("two kubelet-lites bind a batch evenly, each pod once", func(t *testing.T) {
		e.t = t
		node2, cfg2 := e.newNode("node-2", 2)
		t.Cleanup(e.run(cfg2))
		deadline := time.Now().Add(30 * time.Second)
		for {
			n, err := e.cs.CoreV1().Nodes().Get(e.ctx, "node-2", metav1.GetOptions{})
			if err == nil && len(n.Spec.Taints) == 0 {
				if c := nodeCondition(n, v1.NodeReady); c != nil && c.Status == v1.ConditionTrue {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("node-2 not ready: %v %v", n, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// Nodes and pods are separate watches: give node-1's informer a
		// moment to see node-2 before the pods arrive, as in a lab whose
		// nodes are up before anyone creates pods.
		time.Sleep(time.Second)
		names := []string{"batch-0", "batch-1", "batch-2", "batch-3"}
		for _, name := range names {
			p := &v1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
				Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "x", Command: []string{"sleep", "1000"}}}},
			}
			if _, err := e.cs.CoreV1().Pods("default").Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		perNode := map[string]int{}
		for _, name := range names {
			p := e.waitPod(name, "ready", podReady)
			perNode[p.Spec.NodeName]++
			v6 := netip.MustParseAddr(p.Status.PodIP)
			if n := p.Spec.NodeName; n == "node-2" && !netip.MustParsePrefix("2001:db8:f10c:8::/64").Contains(v6) || n == "node-1" && !pool6.Contains(v6) {
				t.Errorf("%s on %s has %s", name, n, v6)
			}
			if ev := e.events(name); strings.Count(ev, "Scheduled") != 1 {
				t.Errorf("%s: want one Scheduled event:\n%s", name, ev)
			}
		}
		if perNode["node-1"] != 2 || perNode["node-2"] != 2 {
			t.Errorf("pods per node %v, want 2 and 2", perNode)
		}
		for _, name := range names {
			if err := e.cs.CoreV1().Pods("default").Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range names {
			e.waitGone(name)
		}
		if n, n2 := e.allocations(), countAllocations(node2.Dir); n != 0 || n2 != 0 {
			t.Errorf("allocations left: %d on node-1, %d on node-2", n, n2)
		}
	})

	entries, _ := os.ReadDir(netnsDir)
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), e.cfg.PodNetnsPrefix) {
			t.Errorf("namespace %s left behind", en.Name())
		}
	}
}

// checkAddressed checks a running pod's addresses and status.
func checkAddressed(t *testing.T, p *v1.Pod) {
	t.Helper()
	if p.Spec.NodeName != "node-1" || p.Status.Phase != v1.PodRunning || p.Status.StartTime == nil {
		t.Errorf("node %q, phase %s, start %v", p.Spec.NodeName, p.Status.Phase, p.Status.StartTime)
	}
	if len(p.Status.PodIPs) != 2 || p.Status.PodIP != p.Status.PodIPs[0].IP {
		t.Fatalf("pod IPs %v, pod IP %s", p.Status.PodIPs, p.Status.PodIP)
	}
	v6, err6 := netip.ParseAddr(p.Status.PodIPs[0].IP)
	v4, err4 := netip.ParseAddr(p.Status.PodIPs[1].IP)
	if err6 != nil || err4 != nil || !pool6.Contains(v6) || !pool4.Contains(v4) {
		t.Errorf("pod IPs %v not IPv6 from %s then IPv4 from %s", p.Status.PodIPs, pool6, pool4)
	}
	if p.Status.HostIP != "2001:db8:1ab:1::2" || len(p.Status.HostIPs) != 2 {
		t.Errorf("host IPs %s %v", p.Status.HostIP, p.Status.HostIPs)
	}
	for _, ct := range []v1.PodConditionType{v1.PodScheduled, v1.PodInitialized, v1.ContainersReady, v1.PodReady, v1.PodReadyToStartContainers} {
		found := false
		for _, c := range p.Status.Conditions {
			found = found || c.Type == ct && c.Status == v1.ConditionTrue
		}
		if !found {
			t.Errorf("condition %s is not True: %+v", ct, p.Status.Conditions)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready || cs.Started == nil || !*cs.Started || cs.State.Running == nil {
			t.Errorf("container status %+v", cs)
		}
	}
}

func nodeCondition(n *v1.Node, typ v1.NodeConditionType) *v1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == typ {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// containerPIDs are the processes of the pod's running containers.
func containerPIDs(p *v1.Pod) []int {
	var out []int
	for _, cs := range p.Status.ContainerStatuses {
		if pid, err := strconv.Atoi(strings.TrimPrefix(cs.ContainerID, "flock-lab://")); err == nil {
			out = append(out, pid)
		}
	}
	return out
}
