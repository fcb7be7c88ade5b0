package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

type clusterResult struct {
	pods        int
	rssMiB      float64
	churnTxPerS float64
	fullApply   time.Duration
}

// perCluster fills the API server with the other nodes, their pods and
// policies, then reads the agent, times a full apply, and runs the churns.
func perCluster(ctx context.Context, a *api, nd *node, c config) (clusterResult, error) {
	var res clusterResult
	const namespaces = 100
	start := time.Now()
	err := parallel(namespaces, 16, func(i int) error {
		return a.namespace(ctx, fmt.Sprintf("c-%d", i), map[string]string{"tier": "c"})
	})
	if err == nil {
		err = parallel(c.nodes, 32, func(i int) error {
			return a.node(ctx, fmt.Sprintf("fn-%d", i), fmt.Sprintf("2001:db8:1:%x::/64", i), fmt.Sprintf("10.%d.%d.0/24", i>>8, i&255), nil)
		})
	}
	if err != nil {
		return res, err
	}
	fmt.Printf("per cluster: %d Nodes + NodeConfigs and %d namespaces created in %s\n", c.nodes, namespaces, time.Since(start).Round(time.Millisecond))
	before, err := nd.stat()
	if err != nil {
		return res, err
	}
	total := c.nodes * c.podsPerNode
	// In five steps, reading the agent after each: its memory against the
	// cluster's pods.
	var took time.Duration
	for step := 1; step <= 5; step++ {
		from, to := total*(step-1)/5, total*step/5
		start = time.Now()
		err = parallel(to-from, 64, func(j int) error {
			j += from
			i, k := j/c.podsPerNode, j%c.podsPerNode
			_, err := a.pod(ctx, fmt.Sprintf("c-%d", i%namespaces), fmt.Sprintf("p-%d-%d", i, k), fmt.Sprintf("fn-%d", i),
				map[string]string{"app": app(k)}, nil,
				canonical(fmt.Sprintf("2001:db8:1:%x::%x", i, k+1)), fmt.Sprintf("10.%d.%d.%d", i>>8, i&255, k+1))
			return err
		})
		if err != nil {
			return res, err
		}
		took += time.Since(start)
		settle(nd)
		st, err := nd.stat()
		if err != nil {
			return res, err
		}
		nd.profile(fmt.Sprintf("cluster-%d", to+len(nd.pods)))
		fmt.Printf("RESULT agent_rss cluster_pods=%d rss_mib=%.1f anon_mib=%.1f\n", to+len(nd.pods), st.rssMiB(), st.anonMiB())
	}
	fmt.Printf("%d pods created with their addresses (create + status, 64 clients) in %s: %.0f pods/s\n",
		total, took.Round(time.Millisecond), float64(total)/took.Seconds())
	start = time.Now()
	err = parallel(c.policies, 32, func(j int) error {
		return a.policy(ctx, appPolicy(fmt.Sprintf("c-%d", j%namespaces), fmt.Sprintf("np-%d", j), app(j), app(j+3), nil, 8000+j%50))
	})
	if err != nil {
		return res, err
	}
	fmt.Printf("%d policies created in %s\n", c.policies, time.Since(start).Round(time.Millisecond))
	settle(nd)
	st, err := nd.stat()
	if err != nil {
		return res, err
	}
	res.pods = total + len(nd.pods)
	res.rssMiB = st.rssMiB()
	nd.profile("cluster-policies")
	fmt.Printf("agent with %d pods in the cluster (%d on its node), %d policies: RSS %.1f MiB (anonymous %.1f MiB), CPU %.1f s while the cluster was created\n",
		res.pods, len(nd.pods), c.policies+c.localPolicies, res.rssMiB, st.anonMiB(), (st.cpu - before.cpu).Seconds())

	wall, work, translate, err := nd.policyReconcile(ctx, "cluster", 5)
	if err != nil {
		return res, err
	}
	res.fullApply = pct(work, 50)
	fmt.Printf("full policy apply at %d cluster pods (translate + nft, from the agent's log, 5 policy changes): p50 %s p99 %s (translate p50 %s); API create -> applied p50 %s\n",
		res.pods, ms(res.fullApply), ms(pct(work, 99)), ms(pct(translate, 50)), ms(pct(wall, 50)))

	if err := a.namespace(ctx, "churn", nil); err != nil {
		return res, err
	}
	for _, ch := range []struct {
		what, ns, label string
	}{
		{"pods no rule of the node references (namespace churn, app=churn)", "churn", "churn"},
		{"pods the node's rules reference (namespace c-0, app=app-1: peers of the node's tier=c policies)", "c-0", app(1)},
	} {
		r, err := churn(ctx, a, nd, c, ch.ns, ch.label)
		if err != nil {
			return res, err
		}
		fmt.Printf("churn of %s: %d pods at %.0f/s: agent CPU %.0f ms/s, %.2f policy syncs/s, %.2f nft transactions/s, RSS %.1f MiB\n",
			ch.what, r.pods, r.rate, r.cpuMsPerS, r.syncsPerS, r.txPerS, r.rssMiB)
		if ch.ns == "churn" {
			res.churnTxPerS = r.txPerS
		}
	}
	return res, nil
}

// canonical writes an address as RFC 5952 says (the API server warns on
// every other spelling).
func canonical(addr string) string { return netip.MustParseAddr(addr).String() }

type churnResult struct {
	pods                               int
	rate, cpuMsPerS, syncsPerS, txPerS float64
	rssMiB                             float64
}

// churn creates pods in namespace ns labelled app=label on the other nodes
// at c.churnRate per second for c.churn, and reads the agent's CPU and how
// often it synced and wrote its table meanwhile (and a second after).
func churn(ctx context.Context, a *api, nd *node, c config, ns, label string) (churnResult, error) {
	var r churnResult
	settle(nd)
	log0 := nd.log()
	st0, err := nd.stat()
	if err != nil {
		return r, err
	}
	start := time.Now()
	n := int(c.churn.Seconds() * float64(c.churnRate))
	tick := time.NewTicker(time.Second / 10)
	defer tick.Stop()
	perTick := max(c.churnRate/10, 1)
	for done := 0; done < n; {
		<-tick.C
		batch := min(perTick, n-done)
		base := done
		if err := parallel(batch, 16, func(j int) error {
			i := base + j
			node := i % c.nodes
			_, err := a.pod(ctx, ns, fmt.Sprintf("churn-%s-%d", label, i), fmt.Sprintf("fn-%d", node), map[string]string{"app": label}, nil,
				canonical(fmt.Sprintf("2001:db8:2:%x::%x", node, i+1)), fmt.Sprintf("10.%d.%d.%d", 128+i>>16, (i>>8)&255, i&255))
			return err
		}); err != nil {
			return r, err
		}
		done += batch
	}
	time.Sleep(time.Second) // the last events reach the agent
	elapsed := time.Since(start)
	st1, err := nd.stat()
	if err != nil {
		return r, err
	}
	log1 := nd.log()[len(log0):]
	r.pods = n
	r.rate = float64(n) / (elapsed - time.Second).Seconds()
	r.cpuMsPerS = float64((st1.cpu - st0.cpu).Milliseconds()) / elapsed.Seconds()
	r.syncsPerS = float64(logCount(log1, "networkpolicy sync")) / elapsed.Seconds()
	r.txPerS = float64(logCount(log1, "networkpolicy applied")) / elapsed.Seconds()
	r.rssMiB = st1.rssMiB()
	return r, nil
}
