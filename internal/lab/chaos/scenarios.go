package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab"
	"github.com/fritzlab/flock/pkg/annotations"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/policy/nptest"
)

func (s *suite) name(prefix string) string { return fmt.Sprintf("%s-%d", prefix, s.seq.Add(1)) }

// stormAnycast is what half the storm's pods serve, on both nodes (two of
// every four created): the audit then also follows anycast routes (proto 84), their
// anti-spoofing entries and the router's anycast routes through the kills.
var stormAnycast = map[string]string{annotations.KeyAnycast: "2001:db8:ffff::cc,192.0.2.204"}

// agentKillStorm (1): pods are created and deleted on both nodes while the
// agents are killed with SIGKILL at random moments and restarted; at the
// end every pod that exists is Ready and reachable, an audit with them
// still there finds every object of theirs and nothing else (anycast
// included), and the audit after they are deleted finds no leak and no
// duplicate.
func (s *suite) agentKillStorm(ctx context.Context, r *Result) {
	var names []string
	for i := range s.opt.StormPods {
		name := s.name("storm")
		node := "node-1"
		if i%2 == 1 {
			node = "node-2"
		}
		var ann map[string]string
		if i%4 < 2 {
			ann = stormAnycast
		}
		if _, err := s.cs.CoreV1().Pods(ns).Create(ctx, pod(name, node, ann), metav1.CreateOptions{}); err != nil {
			r.fail("create %s: %v", name, err)
			return
		}
		names = append(names, name)
	}
	var wg sync.WaitGroup
	// Delete a third of them while the storm runs.
	var deleted []string
	for i := 0; i < len(names); i += 3 {
		deleted = append(deleted, names[i])
	}
	wg.Go(func() {
		for _, n := range deleted {
			time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond)
			s.cs.CoreV1().Pods(ns).Delete(ctx, n, metav1.DeleteOptions{})
		}
	})
	for k := range s.opt.AgentKills {
		time.Sleep(time.Duration(500+rand.IntN(2500)) * time.Millisecond)
		node := fmt.Sprintf("node-%d", 1+k%2)
		if err := s.l.KillAgent(node); err != nil {
			r.fail("kill agent of %s: %v", node, err)
			continue
		}
		time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
		if err := s.l.StartAgent(node); err != nil {
			r.fail("restart agent of %s: %v", node, err)
		}
	}
	wg.Wait()
	var live []string
	for _, n := range names {
		if !contains(deleted, n) {
			live = append(live, n)
		}
	}
	for _, n := range live {
		p, err := s.waitReady(ctx, n, 120*time.Second)
		if err != nil {
			r.fail("%v", err)
			continue
		}
		if err := s.reach(ctx, p); err != nil {
			r.fail("%v", err)
		}
	}
	a := s.audit(ctx)
	r.Leaked += a.leaked
	r.Duplicates += a.duplicates
	for _, p := range a.problems {
		r.fail("with the storm's pods still there: %s", p)
	}
	if a.checked["anycast route (proto 84)"] == 0 {
		r.fail("with the storm's anycast pods Ready, the audit found no anycast route")
	}
	r.Notes = append(r.Notes, "audited with the storm's pods there: "+a.summary())
	if err := s.remove(ctx, names...); err != nil {
		r.fail("%v", err)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("%d pods (half serving anycast), %d deleted during the storm, %d agent kills", len(names), len(deleted), s.opt.AgentKills))
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// birdKill (2): node-2's BIRD is killed with SIGKILL and restarted with
// -R: graceful restart keeps the router's routes to node-2's pods, so the
// traffic to them loses nothing (the lost pings are the figure).
func (s *suite) birdKill(ctx context.Context, r *Result) {
	if err := s.l.KillBIRD("node-2"); err != nil {
		r.fail("%v", err)
		return
	}
	time.Sleep(5 * time.Second)
	if err := s.l.StartBIRD("node-2"); err != nil {
		r.fail("%v", err)
		return
	}
	time.Sleep(10 * time.Second)
}

// apiDown (3): the nodes lose the API for a while: existing pods keep
// their traffic, the agents do not crash (same pid before and after), a
// default-deny policy applied before the outage stays enforced during it
// (stale, never open), and a pod created once the API is back is served.
func (s *suite) apiDown(ctx context.Context, r *Result) {
	// A victim pod on node-2 that only a default-deny policy selects: its
	// ingress is refused before the outage and must stay refused (stale,
	// never open) while the agents cannot see the API.
	victimName := s.name("victim")
	vp := pod(victimName, "node-2", nil)
	vp.Labels = map[string]string{"chaos-victim": victimName}
	if _, err := s.cs.CoreV1().Pods(ns).Create(ctx, vp, metav1.CreateOptions{}); err != nil {
		r.fail("create %s: %v", victimName, err)
		return
	}
	victim, err := s.waitReady(ctx, victimName, 90*time.Second)
	if err != nil {
		r.fail("%v", err)
		return
	}
	defer func() {
		if err := s.remove(ctx, victimName); err != nil {
			r.fail("%v", err)
		}
	}()
	if err := s.reach(ctx, victim); err != nil {
		r.fail("victim before the policy: %v", err)
		return
	}
	np := nptest.Policy(ns, "deny-"+victimName, nptest.Labels("chaos-victim", victimName), nptest.Types(networkingv1.PolicyTypeIngress))
	if _, err := s.cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, &np, metav1.CreateOptions{}); err != nil {
		r.fail("create policy %s: %v", np.Name, err)
		return
	}
	policyGone := false
	defer func() {
		if !policyGone {
			s.cs.NetworkingV1().NetworkPolicies(ns).Delete(ctx, np.Name, metav1.DeleteOptions{})
		}
	}()
	enforced := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if s.reach(ctx, victim) != nil {
			enforced = true
			break
		}
	}
	if !enforced {
		r.fail("default-deny policy %s not enforced on %s within 30s", np.Name, victimName)
		return
	}
	// A pod object no node runs (its nodeSelector matches none), for a CNI
	// ADD straight through the flock plugin on node-1 during the outage:
	// the agent's cache does not have it, so it must ask the API server.
	directName := s.name("direct")
	dp := pod(directName, "", nil)
	dp.Spec.NodeSelector = map[string]string{"chaos.flock.fritzlab.net/nowhere": "true"}
	if _, err := s.cs.CoreV1().Pods(ns).Create(ctx, dp, metav1.CreateOptions{}); err != nil {
		r.fail("create %s: %v", directName, err)
		return
	}
	defer s.remove(ctx, directName)
	direct, err := s.newDirectAttach("node-1", directName)
	if err != nil {
		r.fail("%v", err)
		return
	}
	defer direct.close()
	pids := map[string]int{}
	for _, n := range s.l.Nodes {
		pids[n.Name] = s.l.AgentPid(n.Name)
	}
	if err := s.l.StopAPI(); err != nil {
		r.fail("%v", err)
		return
	}
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	addErr := direct.add(actx)
	cancel()
	switch {
	case addErr == nil:
		r.Notes = append(r.Notes, "CNI ADD during the outage: succeeded")
	case cniCode(addErr) == 11:
		r.Notes = append(r.Notes, "CNI ADD during the outage: code 11 (try again later)")
	default:
		r.fail("CNI ADD during the outage: want success or code 11, got code %d: %v", cniCode(addErr), addErr)
	}
	// Probe the victim during the outage: at the start, the middle and
	// the end of it; every probe must be refused.
	var opened int
	probes := 0
	for end := time.Now().Add(s.opt.APIDown); ; {
		probes++
		if s.reach(ctx, victim) == nil {
			opened++
		}
		left := time.Until(end)
		if left <= 0 {
			break
		}
		time.Sleep(min(left, s.opt.APIDown/3))
	}
	if opened > 0 {
		r.fail("policy opened during the API outage: %d of %d probes to %s got through", opened, probes, victimName)
	}
	if err := s.l.StartAPI(ctx); err != nil {
		r.fail("bring the API back: %v", err)
		return
	}
	back := time.Now()
	var added error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		actx, cancel := context.WithTimeout(ctx, 20*time.Second)
		added = direct.add(actx)
		cancel()
		if added == nil || time.Now().After(deadline) {
			break
		}
	}
	if added != nil {
		r.fail("CNI ADD once the API was back: code %d: %v", cniCode(added), added)
	}
	if err := direct.del(ctx); err != nil {
		r.fail("CNI DEL of the direct attachment: %v", err)
	}
	// With the policy still on, the audit finds the victim's drop in the
	// policy table, and nothing of the direct attachment.
	a := s.audit(ctx)
	r.Leaked += a.leaked
	r.Duplicates += a.duplicates
	for _, p := range a.problems {
		r.fail("with the default-deny policy on: %s", p)
	}
	if a.checked["policy element"] == 0 {
		r.fail("with the default-deny policy on, the audit found no policy table element")
	}
	r.Notes = append(r.Notes, "audited with the policy on: "+a.summary())
	if err := s.cs.NetworkingV1().NetworkPolicies(ns).Delete(ctx, np.Name, metav1.DeleteOptions{}); err != nil {
		r.fail("delete policy %s: %v", np.Name, err)
	} else {
		policyGone = true
		// After a long outage client-go's reflectors retry at intervals
		// of 30 to 60 s (reflector.go: a 30 s cap, jitter 1.0), so the
		// agent's NetworkPolicy informer may list again up to a minute
		// after the API is back; the deletion reaches the node then.
		var err error
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if err = s.reach(ctx, victim); err == nil {
				break
			}
		}
		if err != nil {
			r.fail("victim after the policy was removed: %v", err)
		} else {
			r.Notes = append(r.Notes, fmt.Sprintf("the policy's deletion took effect %s after the API was back", time.Since(back).Round(time.Second)))
		}
	}
	r.Notes = append(r.Notes, fmt.Sprintf("policy stayed enforced: %d of %d probes refused during the outage", probes-opened, probes))
	for n, pid := range pids {
		if got := s.l.AgentPid(n); got != pid {
			r.fail("agent of %s restarted or died while the API was down (pid %d, now %d)", n, pid, got)
		}
	}
	p, err := s.start(ctx, s.name("after-api"), "node-1", nil)
	if err != nil {
		r.fail("a pod created after the API came back: %v", err)
		return
	}
	if err := s.reach(ctx, p); err != nil {
		r.fail("%v", err)
	}
	if err := s.remove(ctx, p.Name); err != nil {
		r.fail("%v", err)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("API down %s", s.opt.APIDown))
}

// storeCorrupt (4): with node-1's agent stopped, its store gets a truncated
// copy of a live pod's allocation (replacing it), a garbage file, and a
// valid file for a pod that does not exist; the agent starts, names each
// bad file in its log, quarantines them, and hands out no live address
// twice: new pods on node-1 never get the live pod's addresses.
func (s *suite) storeCorrupt(ctx context.Context, r *Result) {
	live, err := s.start(ctx, s.name("live"), "node-1", nil)
	if err != nil {
		r.fail("%v", err)
		return
	}
	n1, _ := s.l.Node("node-1")
	dir := filepath.Join(n1.Dir, "allocations")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var liveFile string
	v6, v4 := addrs(live)
	for _, f := range files {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), `"name":"`+live.Name+`"`) {
			liveFile = f
		}
	}
	if liveFile == "" {
		r.fail("no allocation file for %s in %s", live.Name, dir)
		return
	}
	if err := s.l.KillAgent("node-1"); err != nil {
		r.fail("%v", err)
		return
	}
	b, _ := os.ReadFile(liveFile)
	garbage := filepath.Join(dir, "0000garbage.json")
	ghost := filepath.Join(dir, "0000ghost.json")
	ghostRec, _ := json.Marshal(map[string]any{"containerID": "0000ghost", "ifName": "eth0", "namespace": ns, "name": "ghost",
		"hostIface": "flock0000dead", "ipv6": n1.Pool6.Addr().Next().Next().Next().String(), "ipv4": n1.Pool4.Addr().Next().Next().Next().String()})
	os.WriteFile(liveFile, b[:len(b)/2], 0o600)
	os.WriteFile(garbage, []byte("\x00\xffnot json at all"), 0o600)
	os.WriteFile(ghost, ghostRec, 0o600)
	if err := s.l.StartAgent("node-1"); err != nil {
		r.fail("agent does not start on a corrupt store: %v", err)
		return
	}
	time.Sleep(3 * time.Second)
	if s.l.AgentPid("node-1") == 0 {
		r.fail("agent exited on a corrupt store")
		return
	}
	log, _ := os.ReadFile(s.l.AgentLog("node-1"))
	for _, f := range []string{liveFile, garbage} {
		if !strings.Contains(string(log), filepath.Base(f)) {
			r.fail("the agent's log does not name the bad file %s", filepath.Base(f))
		}
		if _, err := os.Stat(f); err == nil && f == garbage {
			r.fail("bad file %s is still in the store (not quarantined)", filepath.Base(f))
		}
	}
	if _, err := os.Stat(ghost); err == nil {
		r.fail("the allocation of a pod that no longer exists (%s) is still in the store", filepath.Base(ghost))
	}
	// New pods must not get the live pod's addresses: the store lost them,
	// the kernel still has them.
	var fresh []string
	for range 4 {
		p, err := s.start(ctx, s.name("fresh"), "node-1", nil)
		if err != nil {
			r.fail("%v", err)
			continue
		}
		fresh = append(fresh, p.Name)
		if f6, f4 := addrs(p); f6 == v6 || f4 == v4 {
			r.fail("new pod %s got the live pod %s's address (%s %s)", p.Name, live.Name, f6, f4)
			r.Duplicates++
		}
	}
	if err := s.reach(ctx, live); err != nil {
		r.fail("live pod after the corrupt store: %v", err)
	}
	if err := s.remove(ctx, append(fresh, live.Name)...); err != nil {
		r.fail("%v", err)
	}
}

// poolChange (5): node-2's pools change while pods run: the running pods
// keep their addresses, a new pod gets one of the new pools, the router
// has both old and new pools until the old ones are empty, then only the
// new ones. The traffic destination moves to the new pool with it.
func (s *suite) poolChange(ctx context.Context, r *Result) {
	n2, _ := s.l.Node("node-2")
	old := s.pools(ctx, "node-2")
	new6 := netip.MustParsePrefix(fmt.Sprintf("2001:db8:42:%x::/64", 0x100+n2.Index))
	new4 := netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", 100+n2.Index))
	oldDst := s.dst.Load()
	before6, before4 := addrs(oldDst)
	if err := s.patchPools(ctx, "node-2", new6, new4); err != nil {
		r.fail("%v", err)
		return
	}
	p, err := s.start(ctx, s.name("newpool"), "node-2", nil)
	if err != nil {
		r.fail("%v", err)
		return
	}
	if v6, v4 := addrs(p); !new6.Contains(v6) || !new4.Contains(v4) {
		r.fail("a pod created after the change got %s %s, want addresses in %s and %s", v6, v4, new6, new4)
	}
	cur, _ := s.cs.CoreV1().Pods(ns).Get(ctx, oldDst.Name, metav1.GetOptions{})
	if a6, a4 := addrs(cur); a6 != before6 || a4 != before4 {
		r.fail("running pod %s changed addresses: %s %s, was %s %s", oldDst.Name, a6, a4, before6, before4)
	}
	learned := s.waitLearned(n2, append(old, new6, new4), nil, 30*time.Second)
	for _, q := range append(old, new6, new4) {
		if !strings.Contains(learned, q.String()+" ") {
			r.fail("while old pods run the router lacks %s (old pools must stay announced until empty): %s", q, strings.TrimSpace(learned))
		}
	}
	// Move the traffic to the new pod, then empty the old pools.
	s.dst.Store(p)
	if err := s.remove(ctx, oldDst.Name); err != nil {
		r.fail("%v", err)
	}
	learned = s.waitLearned(n2, []netip.Prefix{new6, new4}, old, 30*time.Second)
	for _, q := range old {
		if strings.Contains(learned, q.String()+" ") {
			r.fail("the router still has the empty old pool %s", q)
		}
	}
}

func (s *suite) patchPools(ctx context.Context, node string, p6, p4 netip.Prefix) error {
	// An operator changing a NodePool's NodeConfig takes it over first
	// (managed: "false"), or flock-controller puts the pool's blocks back.
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{v1alpha1.AnnotationManaged: "false"}},
		"spec":     map[string]any{"cidr6": p6.String(), "cidr4": p4.String()},
	})
	u, err := s.dyn.Resource(v1alpha1.NodeConfigGVR).Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("patch the pools of %s: %w", node, err)
	}
	// The new pools apply once the agent has accepted this generation; a
	// pod added before that still gets the old ones.
	gen := u.GetGeneration()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, err := s.dyn.Resource(v1alpha1.NodeConfigGVR).Get(ctx, node, metav1.GetOptions{})
		if err == nil && acceptedGeneration(cur) >= gen {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the agent of %s did not accept NodeConfig generation %d within 30s", node, gen)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// acceptedGeneration is the generation the NodeConfig's Accepted=True
// condition describes, 0 when it is not accepted.
func acceptedGeneration(u *unstructured.Unstructured) int64 {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == v1alpha1.ConditionAccepted && m["status"] == string(metav1.ConditionTrue) {
			g, _ := m["observedGeneration"].(int64)
			return g
		}
	}
	return 0
}

// waitLearned waits until the router has every prefix of want and none of
// gone from node n, and returns what it has then.
func (s *suite) waitLearned(n lab.Node, want, gone []netip.Prefix, timeout time.Duration) string {
	v6, v4 := n.Addr6.Addr(), n.Addr4.Addr()
	deadline := time.Now().Add(timeout)
	for {
		learned := s.learnedFrom(v6, v4)
		ok := true
		for _, p := range want {
			ok = ok && strings.Contains(learned, p.String()+" ")
		}
		for _, p := range gone {
			ok = ok && !strings.Contains(learned, p.String()+" ")
		}
		if ok || time.Now().After(deadline) {
			return learned
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// exhaustion (6): 20 pods on node-1 restricted to one /28 of its IPv4 pool
// (annotation cidr4: 16 addresses, all usable inside a larger pool): the
// pods beyond it fail with a CNI error naming the /28, a warning Event
// each; deleting pods lets the waiting ones start.
func (s *suite) exhaustion(ctx context.Context, r *Result) {
	n1pools := s.pools(ctx, "node-1")
	var pool4 netip.Prefix
	for _, p := range n1pools {
		if p.Addr().Is4() {
			pool4 = p
		}
	}
	// The last /28 of the pool, clear of the low addresses IPAM hands out first.
	b := pool4.Addr().As4()
	b[3] = 0xe0
	small := netip.PrefixFrom(netip.AddrFrom4(b), 28)
	ann := map[string]string{"flock.fritzlab.net/cidr4": small.String()}
	var names []string
	for range 20 {
		name := s.name("exhaust")
		if _, err := s.cs.CoreV1().Pods(ns).Create(ctx, pod(name, "node-1", ann), metav1.CreateOptions{}); err != nil {
			r.fail("create %s: %v", name, err)
			return
		}
		names = append(names, name)
	}
	// .224/28 of the lab's /24 pools: none is the pool's network, gateway
	// or broadcast address.
	const capacity = 16
	time.Sleep(20 * time.Second)
	var running, waiting []string
	for _, n := range names {
		p, err := s.cs.CoreV1().Pods(ns).Get(ctx, n, metav1.GetOptions{})
		if err == nil && ready(p) {
			running = append(running, n)
		} else {
			waiting = append(waiting, n)
		}
	}
	if len(running) != capacity {
		r.fail("%d of 20 pods running in a /28 of %d usable addresses", len(running), capacity)
	}
	for _, n := range waiting {
		evs, _ := s.cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + n})
		named, flock := false, false
		for _, e := range evs.Items {
			named = named || e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, small.String()) && strings.Contains(e.Message, "exhausted")
			flock = flock || e.Reason == "FlockPoolExhausted"
		}
		if !named || !flock {
			r.fail("waiting pod %s: no warning Event naming the exhausted range %s (CNI error %v, flock Event %v)", n, small, named, flock)
		}
	}
	// Deleting as many running pods as wait lets every waiting one start.
	if len(waiting) <= len(running) {
		if err := s.remove(ctx, running[:len(waiting)]...); err != nil {
			r.fail("%v", err)
		}
		for _, n := range waiting {
			if _, err := s.waitReady(ctx, n, 120*time.Second); err != nil {
				r.fail("after deleting pods: %v", err)
			}
		}
	}
	if err := s.remove(ctx, names...); err != nil {
		r.fail("%v", err)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("%d running, %d waiting in %s", len(running), len(waiting), small))
}

// uplinkFlap (7): node-2's upstream link loses carrier and gets it back
// (the router's port goes down and up, as a pulled cable: the node keeps
// its addresses; the router, like a real one, keeps its port's
// configuration), then fails silently (up, but dropping everything).
// node-2's sessions run BFD (the router's at 300 ms x 3): each time the
// router withdraws node-2's pools within BFD's detection time plus a
// margin, not the hold time; after the link is back the routes return, and
// so does the traffic.
func (s *suite) uplinkFlap(ctx context.Context, r *Result) {
	n2, _ := s.l.Node("node-2")
	pools := s.pools(ctx, "node-2")
	if err := s.enableBFD(ctx, "node-2"); err != nil {
		r.fail("%v", err)
		return
	}
	// Wait until the router's BFD sessions to node-2 are Up on both families.
	rc := bird.NewClient(s.l.RouterBIRDSocket())
	up2 := 0
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		sess, _ := rc.BFDSessions(ctx)
		up2 = 0
		for _, b := range sess {
			if (b.Address == n2.Addr6.Addr() || b.Address == n2.Addr4.Addr()) && b.State == "Up" {
				up2++
			}
		}
		if up2 == 2 {
			break
		}
	}
	if up2 != 2 {
		sess, _ := rc.BFDSessions(ctx)
		r.fail("the router's BFD sessions to node-2 are not Up within 60s: %v", sess)
		return
	}
	if learned := s.waitLearned(n2, pools, nil, 60*time.Second); !s.hasAll(learned, pools) {
		r.fail("the router lacks node-2's pools before the flap: %s", strings.TrimSpace(learned))
		return
	}
	run("ip", "netns", "exec", s.l.Router, "sysctl", "-qw", "net.ipv6.conf."+n2.RouterIf+".keep_addr_on_down=1")
	if out, err := exec.Command("ip", "-n", s.l.Router, "link", "set", n2.RouterIf, "down").CombinedOutput(); err != nil {
		r.fail("take node-2's link down: %v: %s", err, out)
		return
	}
	down := time.Now()
	withdrawn := s.waitWithdrawn(n2, pools, down)
	switch {
	case withdrawn == 0:
		r.fail("the router still has node-2's pools 30s after the link went down")
	case withdrawn > withdrawWithin:
		r.fail("the router withdrew node-2's pools %s after the link went down, want within %s (BFD)", withdrawn.Round(time.Millisecond), withdrawWithin)
	}
	if withdrawn > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("routes withdrawn %s after link down", withdrawn.Round(10*time.Millisecond)))
	}
	time.Sleep(max(0, 5*time.Second-time.Since(down)))
	if out, err := exec.Command("ip", "-n", s.l.Router, "link", "set", n2.RouterIf, "up").CombinedOutput(); err != nil {
		r.fail("bring node-2's link up: %v: %s", err, out)
		return
	}
	up := time.Now()
	// A session that failed waits out BIRD's error wait time (60 s at
	// first) before it connects again.
	learned := s.waitLearned(n2, pools, nil, 300*time.Second)
	r.Notes = append(r.Notes, fmt.Sprintf("routes back %s after the link", time.Since(up).Round(time.Second)))
	for _, p := range pools {
		if !strings.Contains(learned, p.String()+" ") {
			r.fail("the router did not relearn %s after the link came back", p)
		}
	}
	if err := s.reach(ctx, s.dst.Load()); err != nil {
		r.fail("after the link came back: %v", err)
	}
	// The port going down is seen by the router at once (its neighbour is
	// lost with the interface). A silent failure, the link up but nothing
	// getting through (a dead switch between), only BFD notices: drop
	// everything the router sends and receives on node-2's port.
	table := "chaos_silent"
	rules := fmt.Sprintf("table inet %s {\n chain drop_in { type filter hook input priority -300; iifname %q drop; }\n chain drop_out { type filter hook output priority -300; oifname %q drop; }\n}\n", table, n2.RouterIf, n2.RouterIf)
	nft := exec.Command("ip", "netns", "exec", s.l.Router, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(rules)
	if out, err := nft.CombinedOutput(); err != nil {
		r.fail("drop node-2's link silently: %v: %s", err, out)
		return
	}
	silent := time.Now()
	withdrawn = s.waitWithdrawn(n2, pools, silent)
	switch {
	case withdrawn == 0:
		r.fail("the router still has node-2's pools 30s into a silent link failure (BFD did not take the sessions down)")
	case withdrawn > withdrawWithin:
		r.fail("the router withdrew node-2's pools %s into a silent link failure, want within %s (BFD 300ms x 3)", withdrawn.Round(time.Millisecond), withdrawWithin)
	}
	if withdrawn > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("routes withdrawn %s into a silent link failure (bfd 300ms x 3)", withdrawn.Round(10*time.Millisecond)))
	}
	if out, err := exec.Command("ip", "netns", "exec", s.l.Router, "nft", "delete", "table", "inet", table).CombinedOutput(); err != nil {
		r.fail("end the silent link failure: %v: %s", err, out)
		return
	}
	healed := time.Now()
	learned = s.waitLearned(n2, pools, nil, 300*time.Second)
	r.Notes = append(r.Notes, fmt.Sprintf("routes back %s after the silent failure", time.Since(healed).Round(time.Second)))
	if !s.hasAll(learned, pools) {
		r.fail("the router did not relearn node-2's pools after the silent failure: %s", strings.TrimSpace(learned))
	}
	if err := s.reach(ctx, s.dst.Load()); err != nil {
		r.fail("after the silent failure: %v", err)
	}
}

// withdrawWithin is BFD's detection time in the lab (300 ms x 3) plus a
// margin: far below any BGP hold time.
const withdrawWithin = 3 * time.Second

// waitWithdrawn waits up to 30s until the router has none of pools from
// node n and returns how long after since that took, 0 if it did not.
func (s *suite) waitWithdrawn(n lab.Node, pools []netip.Prefix, since time.Time) time.Duration {
	for deadline := since.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		learned := s.learnedFrom(n.Addr6.Addr(), n.Addr4.Addr())
		gone := true
		for _, p := range pools {
			gone = gone && !strings.Contains(learned, p.String()+" ")
		}
		if gone {
			return time.Since(since)
		}
	}
	return 0
}

func (s *suite) hasAll(learned string, pools []netip.Prefix) bool {
	for _, p := range pools {
		if !strings.Contains(learned, p.String()+" ") {
			return false
		}
	}
	return true
}

// enableBFD turns on BFD for every BGP peer of a node's NodeConfig, taking
// the NodeConfig over from flock-controller in the same patch.
func (s *suite) enableBFD(ctx context.Context, node string) error {
	nc, err := s.dyn.Resource(v1alpha1.NodeConfigGVR).Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get the NodeConfig of %s: %w", node, err)
	}
	peers, _, _ := unstructured.NestedSlice(nc.Object, "spec", "bgp", "peers")
	if len(peers) == 0 {
		return fmt.Errorf("the NodeConfig of %s has no BGP peers", node)
	}
	for _, p := range peers {
		if m, ok := p.(map[string]any); ok {
			m["bfd"] = true
		}
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{v1alpha1.AnnotationManaged: "false"}},
		"spec":     map[string]any{"bgp": map[string]any{"peers": peers}},
	})
	if _, err := s.dyn.Resource(v1alpha1.NodeConfigGVR).Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("turn on BFD for %s: %w", node, err)
	}
	return nil
}
