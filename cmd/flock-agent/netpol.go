package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"

	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/pkg/agent"
	"github.com/fritzlab/flock/pkg/kube"
	"github.com/fritzlab/flock/pkg/metrics"
	"github.com/fritzlab/flock/pkg/netpol"
	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/store"
)

// startNetpol enforces NetworkPolicy (Kubernetes mode, --netpol): informers
// on every policy, namespace and pod of the cluster, and the controller the
// agent calls on every ADD and DEL, which keeps flock's nftables table in
// step; it returns the controller (the admin API reads it). It waits for
// the informers (at most syncWait) before the socket serves: until they
// have synced, ADD fails closed and the table a previous agent loaded stays
// as it is.
func startNetpol(ctx context.Context, log *slog.Logger, node string, b *backend, st *store.Store, a *agent.Agent, rules netpol.Ruleset, m *metrics.Metrics) (*netpol.Controller, error) {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, fmt.Errorf("--netpol needs the nft binary (Debian package nftables): %w", err)
	}
	cluster := kube.NewCluster(b.kube.client)
	cluster.SetNode(node)
	m.CounterFunc("networkpolicy_pod_events_total", "Pod changes in the cluster that a rule of this node may reference (each pokes the NetworkPolicy controller).",
		func() float64 { poked, _ := cluster.PodEvents(); return float64(poked) })
	m.CounterFunc("networkpolicy_pod_events_skipped_total", "Pod changes in the cluster skipped because no rule of this node can reference the pod.",
		func() float64 { _, skipped := cluster.PodEvents(); return float64(skipped) })
	go cluster.Run(ctx)
	c := netpol.New(node, cluster, st, rules, log)
	a.SetPolicy(c)
	go c.Run(ctx)
	wctx, cancel := context.WithTimeout(ctx, syncWait)
	defer cancel()
	if !cache.WaitForCacheSync(wctx.Done(), cluster.HasSynced) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		log.Warn("networkpolicy caches not synced yet; ADD fails until they are", "node", node)
		return c, nil
	}
	log.Info("networkpolicy enforced", "node", node, "table", policy.TableFamily+" "+policy.TableName)
	return c, nil
}

// removeNetpol deletes flock's nftables table when the agent runs in
// Kubernetes mode with --netpol=false: a table an earlier run with
// enforcement loaded would otherwise go on filtering the node's pods with
// policies nothing updates any more. No table is fine. File mode leaves
// nftables alone (tests load tables of their own next to such an agent).
func removeNetpol(ctx context.Context, log *slog.Logger, ap *policy.Applier) error {
	table := policy.TableFamily + " " + policy.TableName
	if _, err := exec.LookPath("nft"); err != nil {
		log.Warn("networkpolicy off; without the nft binary a table an earlier run loaded stays", "table", table)
		return nil
	}
	existed, err := ap.Delete(ctx)
	if err != nil {
		return err
	}
	if existed {
		log.Info("networkpolicy off: deleted the table an earlier run loaded", "table", table)
	} else {
		log.Info("networkpolicy off: no table to delete", "table", table)
	}
	return nil
}
