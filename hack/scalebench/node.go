package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/internal/lab/controlplane"
)

const (
	benchNode = "bench-node"
	benchNS   = "bench"
	anycastIP = "2001:db8:ffff::1"
	apps      = 20
)

// node is one real node: a namespace with flock-agent in Kubernetes mode
// (NetworkPolicy on) and pods attached through the real plugin.
type node struct {
	api   *api
	n     *cnitest.Node
	list  *libcni.NetworkConfigList
	agent *exec.Cmd
	done  chan struct{}
	pods  []*cnitest.Netns
	// profileDir, when set, is where profile saves the agent's heap.
	profileDir string
}

func startNode(ctx context.Context, a *api, dir string, policies int, clusterPeers bool, env, profileDir string) (*node, error) {
	bin := filepath.Join(dir, "bin")
	if err := cnitest.BuildBinaries(bin); err != nil {
		return nil, err
	}
	n, err := cnitest.NewNode(bin, filepath.Join(dir, "node"), "unused in Kubernetes mode\n")
	if err != nil {
		return nil, err
	}
	nd := &node{api: a, n: n, profileDir: profileDir}
	if err := a.namespace(ctx, benchNS, nil); err != nil {
		return nd, err
	}
	if err := a.node(ctx, benchNode, "2001:db8:f0::/64", "198.18.0.0/22", []string{"2001:db8:ffff::/48"}); err != nil {
		return nd, err
	}
	// Every tenth policy takes its peers from the cluster's namespaces
	// (tier=c), when there is a cluster: those put remote pods in the
	// node's rules.
	err = parallel(policies, 16, func(i int) error {
		var fromNS map[string]string
		if clusterPeers && i%10 == 0 {
			fromNS = map[string]string{"tier": "c"}
		}
		return a.policy(ctx, appPolicy(benchNS, fmt.Sprintf("np-%d", i), app(i), app(i+1), fromNS, 80+i%5))
	})
	if err != nil {
		return nd, err
	}
	server, err := forward(ctx, n.NS.Name, apiHost(a.cp.Server))
	if err != nil {
		return nd, err
	}
	kc := filepath.Join(dir, "agent.kubeconfig")
	if err := controlplane.WriteKubeconfig(kc, server, a.cp.CAFile, a.cp.Token); err != nil {
		return nd, err
	}
	logf, err := os.Create(filepath.Join(n.Dir, "agent.log"))
	if err != nil {
		return nd, err
	}
	defer logf.Close()
	// ip netns exec execs the agent in place: the pid is the agent's.
	nd.agent = exec.Command("ip", "netns", "exec", n.NS.Name, filepath.Join(bin, "flock-agent"),
		"--kubeconfig", kc, "--node-name", benchNode, "--socket", n.Socket,
		"--state-dir", filepath.Join(n.Dir, "allocations"), "--log-level", "debug",
		"--metrics-addr", agentMetrics, fmt.Sprintf("--pprof=%v", profileDir != ""))
	nd.agent.Stdout, nd.agent.Stderr = logf, logf
	if env != "" {
		nd.agent.Env = append(os.Environ(), strings.Split(env, ",")...)
	}
	if err := nd.agent.Start(); err != nil {
		return nd, err
	}
	nd.done = make(chan struct{})
	go func() { nd.agent.Wait(); close(nd.done) }()
	if err := nd.waitLog("networkpolicy enforced", 1, 120*time.Second); err != nil {
		return nd, err
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", nd.agent.Process.Pid)); strings.TrimSpace(string(comm)) != "flock-agent" {
		return nd, fmt.Errorf("pid %d is %q, not the agent", nd.agent.Process.Pid, comm)
	}
	if nd.list, err = n.FlockConflist("1.1.0"); err != nil {
		return nd, err
	}
	return nd, nil
}

func app(i int) string { return fmt.Sprintf("app-%d", i%apps) }

func (nd *node) close() {
	if nd.profileDir != "" {
		// The agent's log (its sync timings) outlives the benchmark's
		// temporary directory beside the profiles.
		if err := os.WriteFile(filepath.Join(nd.profileDir, "agent.log"), []byte(nd.log()), 0o644); err != nil {
			fmt.Println("profile:", err)
		}
	}
	for _, p := range nd.pods {
		p.Close()
	}
	if nd.agent != nil && nd.agent.Process != nil {
		_ = nd.agent.Process.Signal(syscall.SIGTERM)
		select {
		case <-nd.done:
		case <-time.After(10 * time.Second):
			_ = nd.agent.Process.Kill()
		}
	}
	nd.n.Close()
}

func (nd *node) log() string { return nd.n.AgentLog() }

// waitLog waits until the agent has logged msg at least n times.
func (nd *node) waitLog(msg string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for logCount(nd.log(), msg) < n {
		select {
		case <-nd.done:
			return fmt.Errorf("flock-agent exited: %s", tail(nd.log()))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent did not log %q %d times within %s: %s", msg, n, timeout, tail(nd.log()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

func (nd *node) stat() (procStat, error) { return readProc(nd.agent.Process.Pid) }

// agentMetrics is where the agent serves metrics (and profiles), inside
// the node's namespace.
const agentMetrics = "127.0.0.1:9983"

// profile saves the agent's heap profile as name.pb.gz (go tool pprof
// reads it) and its text form, which ends with runtime.MemStats, as
// name.txt, when -profile-dir is set. A failure is printed, not fatal: the
// profile is a diagnosis beside the figures.
func (nd *node) profile(name string) {
	if nd.profileDir == "" {
		return
	}
	if err := os.MkdirAll(nd.profileDir, 0o755); err != nil {
		fmt.Println("profile:", err)
		return
	}
	for file, query := range map[string]string{name + ".pb.gz": "", name + ".txt": "?debug=1"} {
		out := filepath.Join(nd.profileDir, file)
		cmd := exec.Command("ip", "netns", "exec", nd.n.NS.Name, "curl", "-sSf", "-o", out,
			"http://"+agentMetrics+"/debug/pprof/heap"+query)
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Printf("profile %s: %v: %s\n", file, err, b)
		}
	}
}

// attach creates pod name in the API on the node and adds it through the
// plugin; it returns the ADD's latency.
func (nd *node) attach(ctx context.Context, name string, labels, ann map[string]string) (time.Duration, error) {
	if _, err := nd.api.pod(ctx, benchNS, name, benchNode, labels, ann); err != nil {
		return 0, err
	}
	netns, err := cnitest.NewNetns("sbpod")
	if err != nil {
		return 0, err
	}
	nd.pods = append(nd.pods, netns)
	rt := cnitest.Runtime(strings.ReplaceAll(netns.Name, "-", ""), netns.Path, benchNS, name)
	start := time.Now()
	if _, err := nd.n.Add(ctx, nd.list, rt); err != nil {
		return 0, fmt.Errorf("ADD %s: %w", name, err)
	}
	return time.Since(start), nil
}

// probeAdds times count ADDs with the node's current pods in place, then
// removes those pods again (DEL, API delete), so the level stays.
func (nd *node) probeAdds(ctx context.Context, level, count int) ([]time.Duration, error) {
	var lat []time.Duration
	first := len(nd.pods)
	for k := range count {
		d, err := nd.attach(ctx, fmt.Sprintf("probe-%d-%d", level, k), map[string]string{"app": app(k)}, nil)
		if err != nil {
			return nil, err
		}
		lat = append(lat, d)
	}
	for k, netns := range nd.pods[first:] {
		name := fmt.Sprintf("probe-%d-%d", level, k)
		rt := cnitest.Runtime(strings.ReplaceAll(netns.Name, "-", ""), netns.Path, benchNS, name)
		if err := nd.n.Del(ctx, nd.list, rt); err != nil {
			return nil, fmt.Errorf("DEL %s: %w", name, err)
		}
		netns.Close()
		if err := nd.api.cs.CoreV1().Pods(benchNS).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return nil, err
		}
	}
	nd.pods = nd.pods[:first]
	return lat, nil
}

// routed reports whether the node's kernel routes the anycast address.
func (nd *node) routed() bool {
	out, _ := exec.Command("ip", "-n", nd.n.NS.Name, "-6", "route", "show", anycastIP).Output()
	return strings.Contains(string(out), anycastIP)
}

// anycastFlips flips the anycast pod's readiness and times each change in
// the API to the route in the node's kernel.
func (nd *node) anycastFlips(ctx context.Context, pod string, flips int) ([]time.Duration, error) {
	var lat []time.Duration
	for i := range flips * 2 {
		ready := i%2 == 0
		start := time.Now()
		if err := nd.api.setReady(ctx, benchNS, pod, ready); err != nil {
			return nil, err
		}
		for nd.routed() != ready {
			if time.Since(start) > 30*time.Second {
				return nil, fmt.Errorf("anycast route never became %v", ready)
			}
			time.Sleep(2 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
	}
	return lat, nil
}

// policyReconcile creates count policies selecting the node's pods, one at
// a time, and times each from the create to the agent's next changed apply;
// it also returns the translate+apply time of those syncs, and the
// translate part alone.
func (nd *node) policyReconcile(ctx context.Context, tag string, count int) (wall, work, translate []time.Duration, err error) {
	for k := range count {
		before := nd.log()
		applied := logCount(before, "networkpolicy applied")
		start := time.Now()
		// A port of its own per call, so every probe changes the ruleset.
		probePort++
		np := appPolicy(benchNS, fmt.Sprintf("probe-%s-%d", tag, k), app(k), app(k+7), nil, probePort)
		if err := nd.api.policy(ctx, np); err != nil {
			return nil, nil, nil, err
		}
		if err := nd.waitLog("networkpolicy applied", applied+1, 60*time.Second); err != nil {
			return nil, nil, nil, err
		}
		wall = append(wall, time.Since(start))
		syncs, err := parseSyncs(nd.log()[len(before):])
		if err != nil {
			return nil, nil, nil, err
		}
		if len(syncs) > 0 {
			// The sync that applied it is the last one so far.
			s := syncs[len(syncs)-1]
			work = append(work, s.translate+s.apply)
			translate = append(translate, s.translate)
		}
	}
	return wall, work, translate, nil
}

// probePort is the last port a probe policy used.
var probePort = 9000

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
