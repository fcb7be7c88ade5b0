// Command flock-controller is flock's cluster controller: one leader among
// its replicas (a coordination.k8s.io Lease) makes the NodeConfig of every
// Node a NodePool selects, with the pool's next free blocks, and assigns
// the addresses of LoadBalancer Services from the ServiceAddressPools
// (pkg/lbipam). It runs apart from the agents, so their RBAC stays
// narrow: only this binary may create and delete NodeConfigs and write
// Services' status. Both controllers run under the one Lease: one leader
// per cluster for NodeConfigs and Service addresses alike.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/pkg/kube"
	"github.com/fritzlab/flock/pkg/lbipam"
	"github.com/fritzlab/flock/pkg/leader"
	"github.com/fritzlab/flock/pkg/nodepool"
)

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig file (default: the pod's service account)")
		identity   = flag.String("identity", "", "this replica's name in the Lease (default: $POD_NAME, else the host name)")
		namespace  = flag.String("lease-namespace", "", "namespace of the Lease (default: $POD_NAMESPACE, else kube-system)")
		leaseName  = flag.String("lease-name", "flock-controller", "name of the Lease the replicas compete for")
		leaseDur   = flag.Duration("lease-duration", leader.DefaultLeaseDuration, "how long a leader that stops renewing keeps the others waiting")
		renew      = flag.Duration("renew-deadline", leader.DefaultRenewDeadline, "how long the leader tries to renew before it stops leading")
		retry      = flag.Duration("retry-period", leader.DefaultRetryPeriod, "how often candidates try to take the Lease")
		resync     = flag.Duration("resync", nodepool.DefaultResync, "how often a full pass runs without a change")
		logLevel   = flag.String("log-level", "info", "debug, info, warn or error")
		metricsOn  = flag.String("metrics-addr", "", "host:port of /metrics (Prometheus); empty: none")
	)
	flag.Parse()
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "flock-controller: --log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	id := firstOf(*identity, os.Getenv("POD_NAME"))
	if id == "" {
		h, err := os.Hostname()
		if err != nil {
			fmt.Fprintf(os.Stderr, "flock-controller: no --identity and no host name: %v\n", err)
			os.Exit(2)
		}
		id = h
	}
	ns := firstOf(*namespace, os.Getenv("POD_NAMESPACE"), "kube-system")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *kubeconfig, leader.Config{
		Namespace: ns, Name: *leaseName, Identity: id,
		LeaseDuration: *leaseDur, RenewDeadline: *renew, RetryPeriod: *retry,
	}, *resync, *metricsOn); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("flock-controller failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, kubeconfig string, lc leader.Config, resync time.Duration, metricsAddr string) error {
	cfg, err := kube.RESTConfig(kubeconfig)
	if err != nil {
		return err
	}
	cfg.UserAgent = "flock-controller/" + lc.Identity
	// client-go's default of 5 requests/s would take 10 s for 50 Nodes
	// joining at once; the writes are one per Node and bounded by them.
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	lc.Client, lc.Log = cs, log
	np := nodepool.New(nodepool.Options{Kube: cs, Dynamic: dc, Log: log.With("controller", "nodepool"), Resync: resync})
	lb := lbipam.New(lbipam.Options{Kube: cs, Dynamic: dc, Log: log.With("controller", "lbipam"), Resync: resync})
	// Metrics are no reason not to lead: a taken port is logged only.
	if err := serveMetrics(ctx, log, metricsAddr, lb); err != nil {
		log.Error("metrics not served", "err", err)
	}
	log.Info("flock-controller starting", "identity", lc.Identity, "lease", lc.Namespace+"/"+lc.Name)
	return leader.Run(ctx, lc, func(ctx context.Context) { lead(ctx, log, np.Run, lb.Run) })
}

// lead runs the controllers while this replica leads. One that stops
// while leading (its caches never synced) stops the others too: leading
// ends, the Lease is released and the replica campaigns again, rather
// than lead half the cluster's work.
func lead(ctx context.Context, log *slog.Logger, runs ...func(context.Context) error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Go(func() {
			defer cancel()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				log.Error("controller stopped", "err", err)
			}
		})
	}
	wg.Wait()
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
