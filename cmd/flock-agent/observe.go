package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/fritzlab/flock/pkg/agent"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/health"
	"github.com/fritzlab/flock/pkg/ipam"
	"github.com/fritzlab/flock/pkg/lbannounce"
	"github.com/fritzlab/flock/pkg/metrics"
	"github.com/fritzlab/flock/pkg/netpol"
	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/rpc"
	"github.com/fritzlab/flock/pkg/store"
)

// The controllers whose passes the agent tracks (flock_reconcile_*,
// /healthz).
const (
	loopPools   = "pools"
	loopAnycast = "anycast"
	loopPolicy  = "networkpolicy"
	loopBGP     = "bgp"
)

// observer is the agent's metrics, loop heartbeats and readiness checks.
type observer struct {
	m      *metrics.Metrics
	loops  *health.Loops
	checks health.Checks
	// policyLoads counts the NetworkPolicy tables loaded.
	policyLoads atomic.Int64
	// gw resolves default-gateway peers for the metrics, the usage report
	// and the admin API, on one netlink socket.
	gw *gatewayResolver
}

func newObserver() *observer {
	return &observer{m: metrics.New(), loops: health.NewLoops(), gw: &gatewayResolver{}}
}

// ready is the agent's one readiness function: /readyz, CNI STATUS and the
// Node's NetworkUnavailable condition all ask it.
func (o *observer) ready(ctx context.Context) error { return o.checks.Ready(ctx) }

func (o *observer) check(name string, f func(context.Context) error) {
	o.checks = append(o.checks, health.Check{Name: name, Check: f})
}

// birdReachable asks BIRD for its status, bounded so that /readyz answers
// fast when BIRD hangs.
func birdReachable(c *bird.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := c.Command(ctx, "show status")
		return err
	}
}

// serveMetrics serves /metrics, /healthz and /readyz on addr until ctx
// ends, and with withPprof Go's profiles under /debug/pprof/; an empty addr
// serves nothing.
func serveMetrics(ctx context.Context, log *slog.Logger, addr string, withPprof bool, o *observer) error {
	mux := http.NewServeMux()
	mux.Handle("GET "+metrics.PathMetrics, o.m.Handler())
	health.Handle(mux, func(context.Context) error { return o.loops.Live() }, o.ready)
	paths := []string{metrics.PathMetrics, health.PathLive, health.PathReady}
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		paths = append(paths, "/debug/pprof/")
	}
	return metrics.Serve(ctx, log, addr, mux, paths...)
}

// meteredHandler counts and times every CNI call.
type meteredHandler struct {
	h rpc.Handler
	m *metrics.Metrics
}

func (h meteredHandler) Handle(ctx context.Context, req *rpc.Request) *rpc.Response {
	start := time.Now()
	resp := h.h.Handle(ctx, req)
	var code uint
	if resp != nil && resp.Error != nil {
		code = resp.Error.Code
	}
	h.m.ObserveCNI(string(req.Op), code, time.Since(start))
	return resp
}

// meteredRuleset times NetworkPolicy applies and counts their errors and
// drift repairs; every full apply or resync is a pass of the policy loop.
type meteredRuleset struct {
	*policy.Applier
	m    *metrics.Metrics
	loop *health.Loop
	// loads counts the tables loaded (status.usage.policyGeneration).
	loads *atomic.Int64
}

func (r meteredRuleset) Apply(ctx context.Context, m *policy.Model) (bool, error) {
	start := time.Now()
	changed, err := r.Applier.Apply(ctx, m)
	r.m.PolicyApplied(time.Since(start), err)
	r.loop.Pass(err)
	if changed && err == nil {
		r.loads.Add(1)
	}
	return changed, err
}

func (r meteredRuleset) Resync(ctx context.Context) (bool, error) {
	repaired, err := r.Applier.Resync(ctx)
	if repaired && err == nil {
		r.m.PolicyRepaired()
		r.loads.Add(1)
	}
	r.loop.Pass(err)
	return repaired, err
}

// watch registers what the gauges read at each scrape, and returns the
// parts status.usage is made of.
func (o *observer) watch(a *agent.Agent, st *store.Store, birdc *bird.Client, any *agent.AnycastReconciler, lb *lbannounce.Reconciler, np *netpol.Controller, ap *policy.Applier) usageParts {
	s := metrics.State{Loops: o.loops.States, Pools: func() []metrics.Pool { return poolUsage(a, st) }}
	if birdc != nil {
		s.Peers = func(ctx context.Context) ([]metrics.Peer, error) { return peers(ctx, a, birdc, o.gw) }
	}
	if any != nil {
		s.Anycast = func() metrics.Anycast { return anycastCounts(any, st) }
	}
	if lb != nil {
		s.LB = func() metrics.LB { return lbCounts(lb) }
	}
	if np != nil && ap != nil {
		s.Policy = func() metrics.Policy { return policyState(np, ap) }
		s.Drops = func(ctx context.Context) ([]metrics.Drop, error) { return drops(ctx, ap, st) }
	}
	o.m.Watch(s)
	return usageParts{pools: s.Pools, peers: s.Peers, anycast: s.Anycast, policy: s.Policy, loads: &o.policyLoads}
}

// lbCounts counts the Service addresses in a pool and those announced.
func lbCounts(r *lbannounce.Reconciler) metrics.LB {
	var out metrics.LB
	inPool := map[netip.Addr]bool{}
	for _, d := range r.Decisions() {
		if !d.Refused {
			inPool[d.Addr] = true
		}
	}
	out.Addresses = len(inPool)
	out.Announced6, out.Announced4 = lbannounce.Addrs(r.Announced())
	return out
}

func poolUsage(a *agent.Agent, st *store.Store) []metrics.Pool {
	node := a.Node()
	if node == nil {
		return nil
	}
	var out []metrics.Pool
	for _, p := range []struct {
		family string
		pool   netip.Prefix
	}{{"ipv6", node.Pool6}, {"ipv4", node.Pool4}} {
		if !p.pool.IsValid() {
			continue
		}
		n := 0
		for _, r := range st.List() {
			for _, ip := range []netip.Addr{r.IPv6, r.IPv4} {
				if ip.IsValid() && p.pool.Contains(ip) {
					n++
				}
			}
		}
		out = append(out, metrics.Pool{Family: p.family, CIDR: p.pool.String(), Size: ipam.Capacity(p.pool), Allocated: float64(n)})
	}
	return out
}

// peers joins the NodeConfig's peers with BIRD's protocols and BFD
// sessions.
func peers(ctx context.Context, a *agent.Agent, c *bird.Client, gw *gatewayResolver) ([]metrics.Peer, error) {
	node := a.Node()
	protos, err := c.ProtocolsAll(ctx)
	var bfd []bird.BFDSession
	if err == nil {
		bfd, err = c.BFDSessions(ctx)
	}
	if node == nil || node.BGP == nil {
		return nil, err
	}
	// Peers written as the node's default gateway are labelled with the
	// address BIRD peers with, as flockctl bgp shows them.
	node = gw.resolve(node)
	byName := map[string]bird.ProtocolDetail{}
	for _, p := range protos {
		byName[p.Name] = p
	}
	now := time.Now()
	out := make([]metrics.Peer, 0, len(node.BGP.Peers))
	for _, peer := range node.BGP.Peers {
		mp := metrics.Peer{Address: peer.Address.String(), State: "missing"}
		if !peer.Address.IsValid() {
			// A default-gateway peer the node has no gateway for.
			mp.Address = fmt.Sprintf("default-gateway-ipv%d", peer.DefaultGateway)
		}
		if p, ok := byName[bird.PeerName(peer.Address)]; ok {
			mp.State, mp.Established = p.BGPState, p.Established()
			if since, ok := bird.ParseSince(p.Since, now); ok {
				mp.Since = since
			}
			mp.Imported, mp.Exported = map[string]float64{}, map[string]float64{}
			for ch, rc := range p.Channels {
				mp.Imported[ch], mp.Exported[ch] = float64(rc.Imported), float64(rc.Exported)
			}
		}
		for _, s := range bfd {
			if s.Address == peer.Address {
				mp.BFD = s.State
			}
		}
		out = append(out, mp)
	}
	return out, err
}

func anycastCounts(r *agent.AnycastReconciler, st *store.Store) metrics.Anycast {
	s := r.State()
	asked := map[netip.Addr]bool{}
	for _, rec := range st.List() {
		for _, a := range rec.Anycast {
			asked[a] = true
		}
	}
	return metrics.Anycast{Addresses: len(asked), Routed: len(s.Routes), Announced: len(s.Announced)}
}

func policyState(np *netpol.Controller, ap *policy.Applier) metrics.Policy {
	applied, _ := np.Applied()
	st := ap.Stats()
	out := metrics.Policy{Rules: st.Rules, Sets: st.Sets, Elements: st.Elements, LastApply: applied.LastApply}
	if applied.Model != nil {
		for _, v := range policy.Verdicts(applied.Model) {
			if v.Ingress.Isolated || v.Egress.Isolated {
				out.RestrictedPods++
			}
		}
	}
	return out
}

// drops are the drop counters as metrics, one series per local pod and
// direction (adminDrops names the pods).
func drops(ctx context.Context, ap *policy.Applier, st *store.Store) ([]metrics.Drop, error) {
	pods, err := adminDrops{ap, st}.Drops(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]metrics.Drop, 0, 2*len(pods))
	for _, p := range pods {
		pod := p.Namespace + "/" + p.Name
		out = append(out, metrics.Drop{Pod: pod, Direction: "ingress", Packets: float64(p.Ingress)},
			metrics.Drop{Pod: pod, Direction: "egress", Packets: float64(p.Egress)})
	}
	return out, nil
}
