// Command scalebench measures flock at the scale its users run, against a
// real kube-apiserver and etcd (the lab's), on one real node (a namespace
// with flock-agent in Kubernetes mode, NetworkPolicy on, pods attached
// through the real plugin):
//
//   - per node (`make bench-agent`, -cluster=false): 0, 100 and 250 pods on
//     the node and 200 policies in the cluster; CNI ADD p50/p99 at each
//     level, the agent's RSS and CPU, its idle CPU, and at 250 pods the
//     reconcile time of anycast (Ready flip in the API to the node's route)
//     and of NetworkPolicy (a new policy in the API to the agent's apply).
//     Last line: agent_rss_mib_250=<n> agent_idle_cpu_ms_per_min=<n>
//   - per cluster (`make bench-scale`): the same node, then -nodes Nodes
//     with NodeConfigs and -pods-per-node pods each (API objects with
//     addresses, no data paths) and -policies policies more; the agent's
//     RSS and CPU, a full policy apply, and churn of -churn-rate pod
//     creations/s elsewhere: once of pods no rule of the node references
//     (the agent must skip them) and once of pods its rules do reference
//     (each one changes the ruleset: the cost every event had before the
//     informer skipped irrelevant pods). Then BGP at scale (bgp.go).
//     Last line: cluster_pods=<n> agent_rss_mib=<n> churn_nft_tx_per_s=<n> full_apply_ms=<n>
//
// Run it as root.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fritzlab/flock/internal/testns"
)

type config struct {
	cluster                      bool
	nodePods, probes             int
	localPolicies                int
	nodes, podsPerNode, policies int
	churnRate                    int
	churn, idle                  time.Duration
	bgpNodes                     int
	bgpOnly                      bool
	agentEnv                     string
	profileDir                   string
}

func main() {
	var c config
	flag.BoolVar(&c.cluster, "cluster", true, "also the cluster phase and BGP at scale (false: `make bench-agent`)")
	flag.IntVar(&c.nodePods, "node-pods", 250, "pods on the measured node")
	flag.IntVar(&c.probes, "probes", 20, "ADDs timed at each level")
	flag.IntVar(&c.localPolicies, "node-policies", 200, "policies in the node's namespace")
	flag.IntVar(&c.nodes, "nodes", 1000, "other nodes (Node + NodeConfig)")
	flag.IntVar(&c.podsPerNode, "pods-per-node", 30, "pods per other node (API objects only)")
	flag.IntVar(&c.policies, "policies", 2000, "policies in the other nodes' namespaces")
	flag.IntVar(&c.churnRate, "churn-rate", 100, "pod creations per second elsewhere")
	flag.DurationVar(&c.churn, "churn", 20*time.Second, "how long each churn runs")
	flag.DurationVar(&c.idle, "idle", time.Minute, "idle period for the agent's idle CPU")
	flag.IntVar(&c.bgpNodes, "bgp-nodes", 50, "BIRD node sessions at the lab router (0: skip)")
	flag.StringVar(&c.agentEnv, "agent-env", "", "KEY=VALUE,… more environment for the agent (GOGC=50, GOMEMLIMIT=64MiB, to compare)")
	flag.StringVar(&c.profileDir, "profile-dir", "", "run the agent with --pprof and save its heap profile (NAME.pb.gz, and NAME.txt with the runtime's memory statistics) at every reading into this directory")
	flag.BoolVar(&c.bgpOnly, "bgp-only", false, "only BGP at scale (no API server)")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the benchmark creates network namespaces")
	}
	testns.RemoveLeftovers()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "flock-scalebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if c.bgpOnly {
		return bgpScale(ctx, dir, c.bgpNodes)
	}
	a, err := startAPI(ctx, filepath.Join(dir, "cp"))
	if err != nil {
		return err
	}
	defer a.cp.Stop()
	nd, err := startNode(ctx, a, dir, c.localPolicies, c.cluster, c.agentEnv, c.profileDir)
	if nd != nil {
		defer nd.close()
	}
	if err != nil {
		return err
	}
	rss250, idle, err := perNode(ctx, nd, c)
	if err != nil {
		return err
	}
	if !c.cluster {
		fmt.Printf("agent_rss_mib_250=%.1f agent_idle_cpu_ms_per_min=%.1f\n", rss250, idle)
		return nil
	}
	res, err := perCluster(ctx, a, nd, c)
	if err != nil {
		return err
	}
	if c.bgpNodes > 0 {
		if err := bgpScale(ctx, dir, c.bgpNodes); err != nil {
			return fmt.Errorf("bgp at scale: %w", err)
		}
	}
	fmt.Printf("cluster_pods=%d agent_rss_mib=%.1f churn_nft_tx_per_s=%.2f full_apply_ms=%d\n",
		res.pods, res.rssMiB, res.churnTxPerS, res.fullApply.Milliseconds())
	return nil
}

// settle waits until the agent's syncs stop for a second (at most 60 s),
// so a reading is not taken in the middle of one.
func settle(nd *node) {
	deadline := time.Now().Add(60 * time.Second)
	last, since := -1, time.Now()
	for time.Now().Before(deadline) {
		n := logCount(nd.log(), "networkpolicy sync")
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > time.Second {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// perNode fills the node to 0, 100 and nodePods pods and reads the agent at
// each level; it returns the RSS at the last level and the idle CPU.
func perNode(ctx context.Context, nd *node, c config) (rssLast, idleMsPerMin float64, err error) {
	levels := []int{0}
	for _, l := range []int{100, c.nodePods} {
		if l > levels[len(levels)-1] {
			levels = append(levels, l)
		}
	}
	fmt.Printf("per node: %d policies in the cluster, NetworkPolicy on; %d ADDs timed at each level\n", c.localPolicies, c.probes)
	fmt.Printf("%-8s %10s %10s %10s %10s %12s\n", "pods", "add_p50", "add_p99", "rss_mib", "anon_mib", "cpu_s_total")
	attached := 0
	for _, level := range levels {
		for attached < level {
			var ann map[string]string
			if attached == 0 {
				ann = map[string]string{"flock.fritzlab.net/anycast": anycastIP}
			}
			if _, err := nd.attach(ctx, fmt.Sprintf("pod-%d", attached), map[string]string{"app": app(attached)}, ann); err != nil {
				return 0, 0, err
			}
			attached++
		}
		settle(nd)
		st, err := nd.stat()
		if err != nil {
			return 0, 0, err
		}
		lat, err := nd.probeAdds(ctx, level, c.probes)
		if err != nil {
			return 0, 0, err
		}
		nd.profile(fmt.Sprintf("node-%d", level))
		fmt.Printf("%-8d %10s %10s %10.1f %10.1f %12.2f\n", level, ms(pct(lat, 50)), ms(pct(lat, 99)), st.rssMiB(), st.anonMiB(), st.cpu.Seconds())
		if level == c.nodePods {
			fmt.Printf("RESULT agent_rss cluster_pods=%d rss_mib=%.1f anon_mib=%.1f\n", level, st.rssMiB(), st.anonMiB())
		}
		fmt.Printf("RESULT add_latency pods=%d p50_ms=%.2f p99_ms=%.2f rss_mib=%.1f anon_mib=%.1f\n", level, msf(pct(lat, 50)), msf(pct(lat, 99)), st.rssMiB(), st.anonMiB())
		rssLast = st.rssMiB()
	}
	settle(nd)
	before, err := nd.stat()
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(c.idle)
	after, err := nd.stat()
	if err != nil {
		return 0, 0, err
	}
	idleMsPerMin = float64((after.cpu - before.cpu).Milliseconds()) / c.idle.Minutes()
	fmt.Printf("idle at %d pods for %s: %.0f ms CPU per minute (%.1f s per hour), RSS %.1f MiB (anonymous %.1f MiB)\n",
		c.nodePods, c.idle, idleMsPerMin, idleMsPerMin*60/1000, after.rssMiB(), after.anonMiB())

	flips, err := nd.anycastFlips(ctx, "pod-0", 5)
	if err != nil {
		return 0, 0, err
	}
	fmt.Printf("anycast reconcile at %d pods (Ready flip in the API -> route in the node's kernel, %d flips): p50 %s p99 %s\n",
		c.nodePods, len(flips), ms(pct(flips, 50)), ms(pct(flips, 99)))
	wall, work, translate, err := nd.policyReconcile(ctx, "node", 5)
	if err != nil {
		return 0, 0, err
	}
	fmt.Printf("policy reconcile at %d pods (new policy in the API -> applied, 5 policies): p50 %s p99 %s; the sync itself (translate+apply) p50 %s, translate p50 %s\n",
		c.nodePods, ms(pct(wall, 50)), ms(pct(wall, 99)), ms(pct(work, 50)), ms(pct(translate, 50)))
	return rssLast, idleMsPerMin, nil
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
