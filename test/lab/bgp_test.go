package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab"
	"github.com/fritzlab/flock/pkg/bird"
)

// routerRoutes lists the router's kernel routes learned from BIRD.
func (e *env) routerRoutes(family string) string {
	out, _ := inNetns(e.lab.Router, "ip", family, "route", "show", "proto", "bird")
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; last state:\n%s", what, timeout, last)
}

func (e *env) routerHas(prefix string, want bool) (bool, string) {
	fam := "-6"
	if !strings.Contains(prefix, ":") {
		fam = "-4"
	}
	out := e.routerRoutes(fam)
	return strings.Contains(out, prefix+" ") == want, out
}

func (e *env) patchNodeConfig(node string, patch map[string]any) {
	e.t.Helper()
	// A test changing a NodeConfig takes it over from flock-controller
	// (managed: "false"), as an operator must, or the controller puts the
	// NodePool's values back.
	md, _ := patch["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
	}
	ann, _ := md["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
	}
	ann[v1alpha1.AnnotationManaged] = "false"
	md["annotations"] = ann
	patch = maps.Clone(patch)
	patch["metadata"] = md
	data, _ := json.Marshal(patch)
	_, err := e.dyn().Resource(v1alpha1.NodeConfigGVR).Patch(context.Background(), node, types.MergePatchType, data, metav1PatchOptions)
	if err != nil {
		e.t.Fatalf("patch nodeconfig %s: %v", node, err)
	}
}

// TestBGP: the router learns every node's pools only over BGP; a node's
// BIRD killed and restarted keeps (graceful restart) and then re-announces
// its routes while cross-node traffic flows; a peer change in a NodeConfig
// moves the session without restarting the agent; a burst of NodeConfig
// updates costs only a few BIRD reloads.
func TestBGP(t *testing.T) {
	e := up(t, 2)
	for _, n := range e.lab.Nodes {
		for _, p := range []string{n.Pool6.String(), n.Pool4.String()} {
			waitFor(t, 60*time.Second, "router learns "+p, func() (bool, string) { return e.routerHas(p, true) })
		}
	}
	if out, _ := inNetns(e.lab.Router, "ip", "route", "show", "proto", "static"); strings.TrimSpace(out) != "" {
		t.Errorf("router has static routes: %s", out)
	}

	// Pods on both nodes, traffic across while node-1's BIRD crashes and
	// comes back.
	const port = 8080
	a := servePod("default", "a", nil, port)
	a.Spec.NodeName = "node-1"
	b := servePod("default", "b", nil, port)
	b.Spec.NodeName = "node-2"
	e.create(a)
	e.create(b)
	pa, pb := e.waitReady("default", "a"), e.waitReady("default", "b")
	a6, a4 := podAddrs(pa)
	var failures, probes atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, addr := range []string{a6.String(), a4.String()} {
				probes.Add(1)
				if got, err := e.tcpAsk(pb, mustAddr(addr), port); err != nil || got != "default/a" {
					failures.Add(1)
				}
			}
		}
	}()
	if err := e.lab.KillBIRD("node-1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the router keeps node-1's routes as stale
	for _, p := range []string{e.lab.Nodes[0].Pool6.String(), e.lab.Nodes[0].Pool4.String()} {
		if ok, out := e.routerHas(p, true); !ok {
			t.Errorf("router dropped %s while node-1's BIRD was down (graceful restart):\n%s", p, out)
		}
	}
	if err := e.lab.StartBIRD("node-1"); err != nil {
		t.Fatal(err)
	}
	sock, _ := e.lab.NodeBIRDSocket("node-1")
	waitFor(t, 60*time.Second, "node-1's sessions re-established", func() (bool, string) {
		protos, err := bird.NewClient(sock).Protocols(context.Background())
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, p := range protos {
			if p.Proto == "BGP" && p.Established() {
				n++
			}
		}
		return n == 2, fmt.Sprint(protos)
	})
	time.Sleep(time.Second)
	close(stop)
	<-done
	if f := failures.Load(); f > 0 {
		t.Errorf("%d of %d connections from node-2 to node-1 failed across node-1's BIRD restart", f, probes.Load())
	}
	if probes.Load() < 4 {
		t.Errorf("only %d probes ran across the restart", probes.Load())
	}

	// Moving node-1's IPv4 session: drop the IPv4 peer, the router loses
	// node-1's IPv4 pool; put it back, it returns. The agent keeps running.
	agentPid := e.lab.AgentPid("node-1")
	n1 := e.lab.Nodes[0]
	// patchNodeConfig takes node-1's NodeConfig over from flock-controller,
	// which from then on leaves it alone (it would undo the patches below).
	v6peer := map[string]any{"address": n1.RouterAddr6.Addr().String(), "asn": lab.RouterASN}
	v4peer := map[string]any{"address": n1.RouterAddr4.Addr().String(), "asn": lab.RouterASN}
	e.patchNodeConfig("node-1", map[string]any{"spec": map[string]any{"bgp": map[string]any{"peers": []any{v6peer}}}})
	waitFor(t, 30*time.Second, "router withdraws node-1's IPv4 pool", func() (bool, string) { return e.routerHas(n1.Pool4.String(), false) })
	e.patchNodeConfig("node-1", map[string]any{"spec": map[string]any{"bgp": map[string]any{"peers": []any{v6peer, v4peer}}}})
	waitFor(t, 30*time.Second, "router relearns node-1's IPv4 pool", func() (bool, string) { return e.routerHas(n1.Pool4.String(), true) })
	if pid := e.lab.AgentPid("node-1"); pid != agentPid || pid == 0 {
		t.Errorf("agent restarted (pid %d -> %d)", agentPid, pid)
	}

	// 100 updates as fast as the API server takes them, each changing the
	// rendered config (the issue asks for 100 within a second; one after
	// another they take about 2 s on a 2-core machine, more when it is busy,
	// and writing them from several clients at once is slower still: the
	// API server retries conflicting patches). The reloader reloads at once,
	// then at most once per 500 ms window, so the bound is 6 for a second's
	// burst, or what the writes' own duration allows if they took longer.
	before := reloads(t, e.lab.AgentLog("node-1"))
	start := time.Now()
	for i := range 100 {
		v6 := map[string]any{"address": v6peer["address"], "asn": lab.RouterASN, "holdTime": 30 + i}
		e.patchNodeConfig("node-1", map[string]any{"spec": map[string]any{"bgp": map[string]any{"peers": []any{v6, v4peer}}}})
	}
	took := time.Since(start)
	t.Logf("100 NodeConfig updates in %s", took.Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	bound := max(6, 2+int((took+499*time.Millisecond)/(500*time.Millisecond)))
	if n := reloads(t, e.lab.AgentLog("node-1")) - before; n > bound || n < 1 {
		t.Errorf("100 NodeConfig updates in %s caused %d BIRD reloads, want 1..%d", took.Round(time.Millisecond), n, bound)
	} else {
		t.Logf("100 NodeConfig updates caused %d BIRD reloads", n)
	}
}

// reloads counts the agent's "bird reloaded" log lines.
func reloads(t *testing.T, log string) int {
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "bird reloaded")
}
