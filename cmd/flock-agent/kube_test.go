package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/controlplane/controlplanetest"
	"github.com/fritzlab/flock/internal/testns"
	adminapi "github.com/fritzlab/flock/pkg/admin"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/bird/birdtest"
	"github.com/fritzlab/flock/pkg/kube"
)

// TestKubernetesMode runs the real flock-agent binary in Kubernetes mode in
// a node's network namespace, against a real kube-apiserver reached
// through a forwarder on the node's 127.0.0.1:6443 (as in the lab), and
// the real flock plugin through libcni.
func TestKubernetesMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (as CI runs it): network namespaces, etcd and kube-apiserver")
	}
	testns.RemoveLeftovers()
	ctx, cancel := context.WithCancel(context.Background())
	if d, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), d.Add(-10*time.Second))
	}
	defer cancel()

	cp, token := controlplanetest.StartWithAgent(t)
	admin := kubernetes.NewForConfigOrDie(cp.RESTConfig())
	ncs := dynamic.NewForConfigOrDie(cp.RESTConfig()).Resource(kube.NodeConfigResource)
	setup(t, ctx, admin)

	binDir := t.TempDir()
	if err := cnitest.BuildBinaries(binDir); err != nil {
		t.Fatal(err)
	}
	node, err := cnitest.NewNode(binDir, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	forwardAPI(t, node.NS.Path, strings.TrimPrefix(cp.Server, "https://"))
	kubeconfig := filepath.Join(node.Dir, "agent.kubeconfig")
	if err := controlplane.WriteKubeconfig(kubeconfig, "https://127.0.0.1:6443", cp.CAFile, token); err != nil {
		t.Fatal(err)
	}
	// An hour between resyncs: a NodeConfig change can only take effect
	// in time through the informer's poke.
	args := []string{"--kubeconfig", kubeconfig, "--node-name", "node-1", "--resync", "1h"}
	bn := startBirdNode(t, node)
	if bn != nil {
		args = append(args, bn.AgentArgs()...)
	}
	startAgent(t, node, args...)

	list, err := node.FlockConflist("1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	podNS, err := cnitest.NewNetns("pod")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { podNS.Close() })
	web, err := admin.CoreV1().Pods("demo").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "web", Annotations: map[string]string{
			"flock.fritzlab.net/ipv4": "false",
			"flock.fritzlab.net/ipv6": "maybe",
		}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "ignored"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rt := cnitest.Runtime("c0ffee01", podNS.Path, "demo", "web")
	rt.Args = append(rt.Args, [2]string{"K8S_POD_UID", string(web.UID)})

	// No NodeConfig yet: ADD fails, and the runtime's error names the node.
	if _, err := node.Add(ctx, list, rt); err == nil || !strings.Contains(err.Error(), "no NodeConfig for node node-1") {
		t.Fatalf("ADD without NodeConfig: %v, want an error naming node-1", err)
	}
	// Nor does the node count as networked (issue 15.6): the agent says
	// why on NetworkUnavailable=True, and its /readyz fails.
	networkUnavailable := func() *corev1.NodeCondition {
		n, err := admin.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeNetworkUnavailable {
				return &c
			}
		}
		return nil
	}
	waitFor(t, "NetworkUnavailable=True (FlockNotReady) on node-1 without a NodeConfig", func() bool {
		c := networkUnavailable()
		return c != nil && c.Status == corev1.ConditionTrue && c.Reason == kube.ReasonFlockNotReady && strings.Contains(c.Message, "no NodeConfig for node node-1")
	})
	if code, body, err := node.HTTPGet(ctx, "/readyz"); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("/readyz without a NodeConfig = %d %q, %v; want 503", code, body, err)
	}

	nc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flock.fritzlab.net/v1alpha1", "kind": "NodeConfig",
		"metadata": map[string]any{"name": "node-1"},
		"spec":     map[string]any{"cidr6": "2001:db8:42:1::/64", "cidr4": "198.18.1.0/24"},
	}}
	if _, err := ncs.Create(ctx, nc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, node, "2001:db8:42:1::/64")

	res, err := node.Add(ctx, list, rt)
	if err != nil {
		t.Fatalf("ADD: %v\nagent log:\n%s", err, node.AgentLog())
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	// The admin API (beside the CNI socket by default) reads the real
	// components of Kubernetes mode: the NodeConfig applied, and the pod in
	// the NetworkPolicy ruleset, unrestricted since no policy selects it.
	ac := adminapi.NewClient(filepath.Join(node.Dir, "admin.sock"), 5*time.Second)
	var st adminapi.Status
	if err := ac.Get(ctx, adminapi.PathStatus, &st); err != nil || st.Mode != "kubernetes" || st.Node != "node-1" || !st.Configured || !st.Policy.Enabled {
		t.Errorf("admin status = %+v, %v", st, err)
	}
	waitFor(t, "demo/web unrestricted in the admin API's policy", func() bool {
		var pol adminapi.Policy
		if err := ac.Get(ctx, adminapi.PathPolicy, &pol); err != nil || !pol.Synced || pol.LastApply.IsZero() {
			return false
		}
		unrestricted := adminapi.Verdict{Mode: adminapi.Unrestricted}
		return len(pol.Pods) == 1 && pol.Pods[0].Namespace == "demo" && pol.Pods[0].Name == "web" &&
			pol.Pods[0].Ingress == unrestricted && pol.Pods[0].Egress == unrestricted
	})
	// ipv4 "false" is honoured; ipv6 "maybe" falls back to the default.
	if len(r.IPs) != 1 || !netip.MustParsePrefix("2001:db8:42:1::/64").Contains(netip.MustParseAddr(r.IPs[0].Address.IP.String())) {
		t.Errorf("ADD gave %v, want one IPv6 address in 2001:db8:42:1::/64", r.IPs)
	}
	waitFor(t, "a FlockAnnotation event on demo/web", func() bool {
		l, err := admin.CoreV1().Events("demo").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, e := range l.Items {
			if e.InvolvedObject.UID == web.UID && e.Reason == "FlockAnnotation" && e.Type == corev1.EventTypeWarning &&
				strings.Contains(e.Message, "flock.fritzlab.net/ipv6") {
				return true
			}
		}
		return false
	})
	waitFor(t, "NetworkUnavailable=False on node-1", func() bool {
		c := networkUnavailable()
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == kube.ReasonFlockReady
	})
	// status.usage: the pod's IPv6 address allocated in the pool (ipv4
	// "false"), the rest free; printed by kubectl get nc.
	waitFor(t, "status.usage with the pod's address on the NodeConfig", func() bool {
		u, err := ncs.Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return false
		}
		pools, _, _ := unstructured.NestedSlice(u.Object, "status", "usage", "pools")
		for _, p := range pools {
			if m, ok := p.(map[string]any); ok && m["family"] == "ipv6" {
				return m["allocated"] == int64(1) && m["free"] == "18446744073709551614" && m["cidr"] == "2001:db8:42:1::/64"
			}
		}
		return false
	})
	waitFor(t, "Accepted=True on the NodeConfig", func() bool {
		u, err := ncs.Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			return false
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == kube.ConditionAccepted {
				return m["status"] == "True"
			}
		}
		return false
	})

	// A new pool takes effect without a restart; so does a BGP peer, with
	// its password read from a Secret in the agent's namespace.
	u, err := ncs.Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := map[string]any{"cidr6": "2001:db8:42:99::/64", "cidr4": "198.18.1.0/24"}
	if bn != nil {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: v1alpha1.DefaultNamespace, Name: "bgp",
			Labels: map[string]string{v1alpha1.LabelBGPPassword: "true"}}, Data: map[string][]byte{"router": []byte("s3cret")}}
		if _, err := admin.CoreV1().Secrets(v1alpha1.DefaultNamespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		spec["bgp"] = map[string]any{"asn": int64(65101), "peers": []any{map[string]any{"address": birdtest.Router6, "asn": int64(65000),
			"passwordSecretRef": map[string]any{"name": "bgp", "key": "router"}}}}
	}
	u.Object["spec"] = spec
	if _, err := ncs.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, node, "2001:db8:42:99::/64")
	if bn != nil {
		waitFor(t, "BGPConfigured=True on the NodeConfig", func() bool {
			u, err := ncs.Get(ctx, "node-1", metav1.GetOptions{})
			if err != nil {
				return false
			}
			status, reason, _, current := bgpConfigured(u)
			return status == "True" && reason == v1alpha1.ReasonConfigured && current
		})
		waitSessions(t, bn, bird.PeerName(netip.MustParseAddr(birdtest.Router6)))
		if conf, err := os.ReadFile(bn.Config); err != nil || !strings.Contains(string(conf), `password "s3cret";`) {
			t.Errorf("bird.conf has no password line (%v):\n%s", err, conf)
		}
	}

	if err := node.Del(ctx, list, rt); err != nil {
		t.Errorf("DEL: %v", err)
	}
	if err := ncs.Delete(ctx, "node-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ADD to fail after the NodeConfig is deleted", func() bool {
		_, err := node.Add(ctx, list, cnitest.Runtime("c0ffee02", podNS.Path, "demo", "web"))
		return err != nil && strings.Contains(err.Error(), "no NodeConfig for node node-1")
	})
	if bn != nil {
		waitSessions(t, bn) // the bootstrap config: no sessions
	}
}

// setup creates what a cluster has before flock: the Node (network not
// ready), a namespace and its default ServiceAccount (no controller
// manager runs to make it).
func setup(t *testing.T, ctx context.Context, admin kubernetes.Interface) {
	t.Helper()
	n, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue,
		Reason: "NoRouteCreated", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if _, err := admin.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "demo"}}
	if _, err := admin.CoreV1().ServiceAccounts("demo").Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// forwardAPI listens on the node namespace's 127.0.0.1:6443 and forwards
// every connection to the API server in the test's own namespace, as the
// lab's forwarder does.
func forwardAPI(t *testing.T, nsPath, target string) {
	t.Helper()
	h, err := ns.GetNS(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var ln net.Listener
	if err := h.Do(func(ns.NetNS) error {
		ln, err = net.Listen("tcp", "127.0.0.1:6443")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
}

// startAgent runs flock-agent in the node's namespace with the given
// source flags until the test ends.
func startAgent(t *testing.T, node *cnitest.Node, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(node.Dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", node.NS.Name, filepath.Join(node.BinDir, "flock-agent"),
		"--socket", node.Socket, "--state-dir", filepath.Join(node.Dir, "allocations"), "--log-level", "debug"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("agent log:\n%s", node.AgentLog())
		}
	})
	waitFor(t, "the agent's socket", func() bool {
		select {
		case <-done:
			t.Fatalf("flock-agent exited at start: %s", node.AgentLog())
		default:
		}
		c, err := net.Dial("unix", node.Socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// waitRoute waits for the pool's blackhole route, which the agent installs
// when it applies a NodeConfig.
func waitRoute(t *testing.T, node *cnitest.Node, pool string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("blackhole route %s in the node", pool), func() bool {
		out, err := node.NS.Run("ip", "-6", "route", "show", "type", "blackhole")
		return err == nil && strings.Contains(out, pool)
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
