// Command flock-agent is flock's node agent: it owns all pod networking state
// of its node and answers the flock CNI plugin over a unix socket.
//
// It runs in one of two modes: Kubernetes (the node's NodeConfig and pods
// from the API server, through --kubeconfig or the pod's service account)
// or file (--node-config and --pods-dir, for tests and the demo).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fritzlab/flock/pkg/admin"
	"github.com/fritzlab/flock/pkg/agent"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/lbannounce"
	"github.com/fritzlab/flock/pkg/metrics"
	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/netpol"
	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/routing"
	"github.com/fritzlab/flock/pkg/rpc"
	"github.com/fritzlab/flock/pkg/store"
)

func main() {
	var (
		socket     = flag.String("socket", rpc.DefaultSocket, "unix socket the CNI plugin calls")
		adminSock  = flag.String("admin-socket", "", "unix socket of the read-only admin API that flockctl reads (default: admin.sock beside --socket, "+admin.DefaultSocket+")")
		stateDir   = flag.String("state-dir", "/var/lib/flock/allocations", "directory of the pod allocations")
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig file (Kubernetes mode; default: the pod's service account)")
		nodeName   = flag.String("node-name", "", "this node's name (Kubernetes mode; default: $NODE_NAME)")
		nodeConfig = flag.String("node-config", "", "NodeConfig manifest (file mode)")
		podsDir    = flag.String("pods-dir", "", "pod metadata as <dir>/<namespace>/<name>.yaml (file mode)")
		syncEvery  = flag.Duration("resync", 30*time.Second, "how often the node's pool routes are re-checked")
		fsync      = flag.Bool("fsync", false, "fsync allocations so they also survive a power loss (a crash of the agent never loses them)")
		logLevel   = flag.String("log-level", "info", "debug, info, warn or error")
		birdConfig = flag.String("bird-config", "", "BIRD config file the agent renders and BIRD reads (bird -c); empty: BGP off")
		birdSocket = flag.String("bird-socket", "", "BIRD's control socket (bird -s); needed with --bird-config")
		namespace  = flag.String("namespace", "", "the agent's namespace, where the BGP password Secrets are (Kubernetes mode; default: $POD_NAMESPACE, else flock-system); a NodeConfig naming a Secret in another namespace is rejected")
		sweepEvery = flag.Duration("leak-sweep", agent.DefaultSweepEvery, "how often allocations are checked for leaks (pod gone from the API and netns gone, for runtimes that never call CNI GC); 0: never")
		sweepGrace = flag.Duration("leak-sweep-grace", agent.DefaultSweepGrace, "the leak sweep leaves allocations younger than this alone")
		syncWaitF  = flag.Duration("sync-wait", syncWait, "how long to wait for the informer caches at start before serving anyway (Kubernetes mode)")
		procSys    = flag.String("proc-sys", datapath.DefaultProcSys, "where the node's sysctls are: /proc/sys, or a writable mount of the host's /proc/sys/net below DIR/net (an unprivileged container's /proc/sys is read-only)")
		metricsOn  = flag.String("metrics-addr", metrics.DefaultAddr, "host:port of /metrics (Prometheus), /healthz and /readyz; empty: none")
		antiSpoof  = flag.Bool("anti-spoofing", true, "drop packets a pod sends from an address it was not given (nftables table inet "+policy.GuardTable+", in every mode); false deletes that table at start")
		services   = flag.String("service-cidrs", "", "the cluster's Service CIDRs, comma-separated (kube-apiserver --service-cluster-ip-range): no pod may claim an anycast address inside them")
		memLimit   = flag.Int("memory-limit-mib", defaultMemoryLimitMiB, "soft memory limit of the Go runtime in MiB (the collector runs more often near it); GOMEMLIMIT, when set, wins; 0: none")
		pprofOn    = flag.Bool("pprof", false, "also serve Go's profiles (/debug/pprof/: heap, goroutines, CPU) on --metrics-addr, to find where memory and CPU go")
		netpolOn   = flag.Bool("netpol", true, "enforce NetworkPolicy with nftables (Kubernetes mode; file mode never does); false deletes flock's table (inet flock) at start, so that the policies an earlier run loaded stop filtering")
	)
	flag.Parse()
	if !*pprofOn {
		// Only --pprof serves heap profiles. Without it, Go's default
		// sampling (one allocation in 512 KiB) keeps a bucket per
		// allocation stack for the life of the process, which no one can
		// read: 1.7 MiB of the agent's heap at 250 pods.
		runtime.MemProfileRate = 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "flock-agent: --log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	limit, err := setMemoryLimit(*memLimit, os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "flock-agent: %v\n", err)
		os.Exit(2)
	}
	log.Info("memory limit", "limit", limit)
	m, err := chooseMode(modeFlags{
		NodeConfig: *nodeConfig, PodsDir: *podsDir,
		Kubeconfig: *kubeconfig, NodeName: *nodeName, NodeNameEnv: os.Getenv("NODE_NAME"),
		InCluster: os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("KUBERNETES_SERVICE_PORT") != "",
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "flock-agent: %v\n", err)
		os.Exit(2)
	}
	m.Netpol = m.Kube && *netpolOn
	syncWait = *syncWaitF
	m.Namespace = secretsNamespace(*namespace)
	m.AntiSpoofing = *antiSpoof
	if m.ServiceCIDRs, err = parseServiceCIDRs(*services); err != nil {
		fmt.Fprintf(os.Stderr, "flock-agent: %v\n", err)
		os.Exit(2)
	}
	bf := birdFlags{Config: *birdConfig, Socket: *birdSocket, Namespace: m.Namespace}
	if err := bf.check(); err != nil {
		fmt.Fprintf(os.Stderr, "flock-agent: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	socks := sockets{CNI: *socket, Admin: adminSocketPath(*adminSock, *socket), Metrics: *metricsOn, Pprof: *pprofOn}
	sw := sweepFlags{Every: *sweepEvery, Grace: *sweepGrace}
	if err := run(ctx, log, m, bf, socks, sw, *procSys, *stateDir, *syncEvery, *fsync); err != nil {
		log.Error("flock-agent failed", "err", err)
		os.Exit(1)
	}
}

// sockets are where the agent serves: the CNI plugin, the admin API, and
// metrics and health (a TCP address; empty: off), with Go's profiles
// beside them when Pprof is set.
type sockets struct {
	CNI, Admin, Metrics string
	Pprof               bool
}

// sweepFlags tune the leak sweep (Every 0: off).
type sweepFlags struct{ Every, Grace time.Duration }

func run(ctx context.Context, log *slog.Logger, m mode, bf birdFlags, socks sockets, sw sweepFlags, procSys, stateDir string, every time.Duration, fsync bool) error {
	dp, err := datapath.New()
	if err != nil {
		return err
	}
	dp.SetProcSys(procSys)
	if err := dp.Init(); err != nil {
		return err
	}
	return serve(ctx, log, m, bf, dp, socks, sw, stateDir, every, fsync)
}

// serve runs the agent on a data path until ctx ends.
func serve(ctx context.Context, log *slog.Logger, m mode, bf birdFlags, dp agent.Datapath, socks sockets, sw sweepFlags, stateDir string, every time.Duration, fsync bool) error {
	st, err := store.Open(stateDir, store.Options{Sync: fsync}, log)
	if err != nil {
		return err
	}
	log.Info("flock-agent starting", "mode", m.String())
	var b *backend
	if m.Kube {
		if b, err = kubeBackend(ctx, m, log); err != nil {
			return err
		}
	} else {
		b = fileBackend(ctx, m, log)
	}
	defer b.stop()
	a := agent.New(b.src, b.rec, dp, st, log)
	// Before the first Sync seeds the allocator: an address a veth carries
	// is never handed out, whatever the files say.
	if err := a.Restore(); err != nil {
		return err
	}
	var bgpRef *routing.Controller // set below; the hook runs later
	a.SetDrainHook(func(n *model.Node, drains []agent.Drain) {
		if bgpRef != nil {
			bgpRef.Trigger()
		}
		if b.kube != nil {
			reportDrains(b.kube, n, drains)
		}
	})
	obs := newObserver()
	a.Instrument(agent.Instrumentation{Observer: obs.m, Ready: obs.ready,
		Pools: obs.loops.Register(loopPools, every), Anycast: obs.loops.Register(loopAnycast, anycastEvery)})
	obs.m.CounterFunc("leaked_allocations_released_total", "Allocations the leak sweep released: the pod gone from the API and its network namespace gone, without a CNI DEL or GC.",
		func() float64 { return float64(a.LeaksReleased()) })
	// The store is loaded (store.Open) before anything serves.
	obs.check("nodeconfig", a.Ready)
	if b.kube != nil {
		obs.check("informers", func(context.Context) error {
			if !b.kube.src.HasSynced() {
				return errors.New("the nodeconfig and pod caches have not synced yet")
			}
			return nil
		})
	}
	parts := adminParts{mode: m, agent: a, src: b.src, gw: obs.gw, store: st, dp: dp}
	var applier *policy.Applier
	a.SetAnycastScope(newAnycastScope(ctx, m.ServiceCIDRs, b.kube))
	if parts.guard, err = startGuard(ctx, log, m.AntiSpoofing, a); err != nil {
		return err
	}
	obs.m.CounterFunc("ipam_exhausted_total", "CNI ADDs refused because every range the pod may use was full.",
		func() float64 { return float64(a.Exhausted()) })
	if g := parts.guard; g != nil {
		var last atomic.Uint64 // a failed read repeats it: a counter never goes back
		obs.m.CounterFunc("antispoofing_dropped_packets_total", "Packets pods sent from an address they were not given, dropped by table inet "+policy.GuardTable+".",
			func() float64 {
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				if d, err := g.Drops(ctx); err == nil {
					last.Store(d.Packets)
				}
				return float64(last.Load())
			})
	}
	if m.Netpol {
		applier = policy.NewApplier(policy.NFT{})
		parts.applier = applier
		rules := meteredRuleset{Applier: applier, m: obs.m, loop: obs.loops.Register(loopPolicy, netpol.DefaultResync), loads: &obs.policyLoads}
		// Before the socket listens: no ADD may go without the policy hook.
		if parts.netpol, err = startNetpol(ctx, log, m.NodeName, b, st, a, rules, obs.m); err != nil {
			return err
		}
		np := parts.netpol
		obs.check("networkpolicy", func(context.Context) error {
			if _, synced := np.Applied(); !synced {
				return netpol.ErrNotSynced
			}
			return nil
		})
	} else if m.Kube {
		// Not fatal: pods are networked without it.
		if err := removeNetpol(ctx, log, policy.NewApplier(policy.NFT{})); err != nil {
			log.Error("networkpolicy off, but the table an earlier run loaded may stay", "err", err)
		}
	}
	if _, _, err := a.Sync(ctx); err != nil {
		// Not fatal: STATUS reports it and ADD fails until a config appears.
		log.Warn("node not configured yet", "err", err)
	}
	// After the first Sync, so that the pool routes BIRD announces are
	// installed before it announces them.
	var bgp *routing.Controller
	if bf.enabled() {
		_, anycastOn := dp.(agent.AnycastKernel)
		if bgp, parts.reloader, err = startBGP(ctx, log, bf, b, a, anycastOn, servicesOn(m, bf), obs.m, obs.loops.Register(loopBGP, routing.DefaultResync)); err != nil {
			return err
		}
		parts.bird = bird.NewClient(bf.Socket)
		obs.check("bird", birdReachable(parts.bird))
		bgpRef = bgp
	}
	parts.anycast, parts.ready = startAnycast(ctx, a, dp, b, bgp)
	if servicesOn(m, bf) {
		parts.services = startServices(ctx, log, m, b, a, bgp)
	}
	usage := obs.watch(a, st, parts.bird, parts.anycast, parts.services, parts.netpol, applier)
	if b.kube != nil {
		go reportUsage(ctx, b.kube.src, usage)
	}
	if err := serveMetrics(ctx, log, socks.Metrics, socks.Pprof, obs); err != nil {
		// Not fatal: pods are networked without it (the probes will say).
		log.Error("metrics and health not served", "err", err)
	}
	// Before the CNI socket, so that whoever waits for that one finds this
	// one too.
	if err := startAdmin(ctx, log, socks.Admin, parts); err != nil {
		return err
	}
	ln, err := rpc.Listen(socks.CNI)
	if err != nil {
		return err
	}
	go a.Run(ctx, every)
	if sw.Every > 0 {
		go a.RunSweep(ctx, sw.Every, sw.Grace)
	}
	if b.changes != nil {
		go syncOnChange(ctx, a, bgp, parts.services, b.changes, log)
	}
	b.serving(ctx, obs.ready)
	log.Info("flock-agent serving", "socket", socks.CNI, "admin", socks.Admin, "state", stateDir, "allocations", len(st.List()))
	return rpc.Serve(ctx, ln, meteredHandler{a, obs.m}, log)
}

// syncOnChange applies a new NodeConfig as soon as the informer (or the
// file watch) sees it, instead of at the next tick of Run: the pools first,
// then BIRD's config (bgp is nil when BGP is off), and the Service
// announcer's decision (nil when off), which reads the node's pools and
// readiness.
func syncOnChange(ctx context.Context, a *agent.Agent, bgp *routing.Controller, lb *lbannounce.Reconciler, changes <-chan struct{}, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes:
		}
		if _, _, err := a.Sync(ctx); err != nil && !errors.Is(err, model.ErrNoNodeConfig) {
			log.Error("sync node configuration", "err", err)
		}
		if bgp != nil {
			// Also when Sync failed: the BGPConfigured condition reports it.
			bgp.Trigger()
		}
		if lb != nil {
			lb.Poke()
		}
	}
}

// anycastEvery is the anycast reconciler's safety-net tick; readiness
// changes and CNI calls trigger it at once.
const anycastEvery = 2 * time.Second

// startAnycast runs the Ready-gated anycast reconciler when the data path
// can route anycast. In Kubernetes mode readiness comes from the pod
// informer (synced by now); file mode has no readiness, so every pod with
// an allocation counts as Ready.
//
// It returns the reconciler and the readiness it uses (the admin API shows
// both), nil when the data path cannot route anycast.
func startAnycast(ctx context.Context, a *agent.Agent, dp agent.Datapath, b *backend, bgp *routing.Controller) (*agent.AnycastReconciler, agent.Readiness) {
	kernel, ok := dp.(agent.AnycastKernel)
	if !ok {
		return nil, nil
	}
	var ready agent.Readiness = allReady{}
	var changes <-chan struct{}
	if b.kube != nil {
		ready, changes = b.kube.src, b.kube.src.ReadyChanges()
	}
	var announce agent.AnycastAnnouncer
	if bgp != nil {
		announce = bgp
	}
	r := a.NewAnycastReconciler(ready, kernel, announce)
	go r.Run(ctx, anycastEvery, changes)
	return r, ready
}

type allReady struct{}

func (allReady) PodReady(string, string) bool { return true }
