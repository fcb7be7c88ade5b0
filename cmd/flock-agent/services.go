package main

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/fritzlab/flock/pkg/agent"
	"github.com/fritzlab/flock/pkg/annotations"
	"github.com/fritzlab/flock/pkg/kube"
	"github.com/fritzlab/flock/pkg/lbannounce"
	"github.com/fritzlab/flock/pkg/routing"
)

// lbEvery is the Service announcer's safety-net tick; Service and
// EndpointSlice changes trigger it at once.
const lbEvery = 5 * time.Second

// servicesOn says whether the agent announces LoadBalancer Service
// addresses: in Kubernetes mode with BGP on (file mode has no Services).
func servicesOn(m mode, bf birdFlags) bool { return m.Kube && bf.enabled() }

// startServices runs the informers on Services, EndpointSlices and
// ServiceAddressPools and the reconciler that hands the node's Service
// routes to the BGP controller (lbannounce's package comment says which).
// The BGP controller waits for its first set (routing.Options.AwaitServices);
// if these caches do not sync within --sync-wait of the NodeConfig and pod
// caches, it gets an empty one.
func startServices(ctx context.Context, log *slog.Logger, m mode, b *backend, a *agent.Agent, bgp *routing.Controller) *lbannounce.Reconciler {
	svcs := kube.NewServices(b.kube.client, b.kube.dyn, m.NodeName, log)
	go svcs.Run(ctx)
	r := lbannounce.NewReconciler(lbannounce.Options{
		Source:    svcs,
		Announcer: bgp,
		Reserved:  func() []annotations.Reserved { return serviceReserved(a, b.kube.src, m.ServiceCIDRs) },
		// The node serves Cluster Services once its NodeConfig is applied:
		// what makes the agent ready to network pods.
		NodeReady:    func() bool { return a.Node() != nil },
		SyncWait:     syncWait,
		OthersSynced: b.kube.src.HasSynced,
		Log:          log,
	})
	go r.Run(ctx, lbEvery, svcs.Changes())
	return r
}

// serviceReserved are the ranges no Service address is announced in: every
// NodeConfig's pod pools, this node's draining pools, and the cluster's
// Service ranges (--service-cidrs).
func serviceReserved(a *agent.Agent, src *kube.Source, services []netip.Prefix) []annotations.Reserved {
	var out []annotations.Reserved
	for _, p := range services {
		out = append(out, annotations.Reserved{Prefix: p, What: "the cluster's Service range"})
	}
	for _, n := range src.AllPools() {
		for _, p := range []netip.Prefix{n.Pool6, n.Pool4} {
			if p.IsValid() {
				out = append(out, annotations.Reserved{Prefix: p, What: "node " + n.Name + "'s pod pool"})
			}
		}
	}
	if n := a.Node(); n != nil {
		for _, p := range append([]netip.Prefix{n.Pool6, n.Pool4}, a.Draining(n)...) {
			if p.IsValid() {
				out = append(out, annotations.Reserved{Prefix: p, What: "this node's pod pool"})
			}
		}
	}
	return out
}
