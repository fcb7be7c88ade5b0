package main

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"

	"github.com/fritzlab/flock/pkg/admin"
	"github.com/fritzlab/flock/pkg/agent"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/lbannounce"
	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/netpol"
	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/routing"
	"github.com/fritzlab/flock/pkg/rpc"
	"github.com/fritzlab/flock/pkg/store"
)

// adminSocketPath is --admin-socket, else admin.sock beside the CNI
// socket: /run/flock/admin.sock by default, and one per agent wherever
// several run on one machine (tests, the lab).
func adminSocketPath(flag, socket string) string {
	if flag != "" {
		return flag
	}
	return filepath.Join(filepath.Dir(socket), filepath.Base(admin.DefaultSocket))
}

// adminParts are the components the admin API reads; nil ones are off.
type adminParts struct {
	mode    mode
	agent   *agent.Agent
	src     agent.Source
	gw      *gatewayResolver
	store   *store.Store
	bird    *bird.Client
	anycast *agent.AnycastReconciler
	ready   agent.Readiness
	// services is the LoadBalancer announcer (nil: off).
	services *lbannounce.Reconciler
	netpol   *netpol.Controller
	// For flockctl drops and doctor.
	dp       agent.Datapath
	reloader *bird.Reloader
	applier  *policy.Applier
	guard    *policy.Guard
}

// startAdmin opens the admin socket (a stale one is replaced, a live one
// is an error, as for the CNI socket) and serves the read-only API on it
// until ctx ends.
func startAdmin(ctx context.Context, log *slog.Logger, path string, p adminParts) error {
	ln, err := rpc.Listen(path)
	if err != nil {
		return err
	}
	src := admin.Sources{
		Mode:        "file",
		Node:        adminNode{p.agent, p.src, p.gw},
		Allocations: adminAllocations{p.store},
	}
	if p.mode.Kube {
		src.Mode = "kubernetes"
	}
	if p.bird != nil {
		src.BIRD = adminBIRD{p.bird}
	}
	if p.anycast != nil {
		src.Anycast = adminAnycast{p.anycast, p.ready}
	}
	if p.services != nil {
		src.Services = adminServices{p.services}
	}
	if p.netpol != nil {
		src.Policy = adminPolicy{p.netpol}
		src.Trace = adminTrace{p.netpol, p.store}
	}
	if p.applier != nil {
		src.Drops = adminDrops{p.applier, p.store}
	}
	src.Doctor = doctor{dp: p.dp, st: p.store, reloader: p.reloader, applier: p.applier}
	if p.guard != nil {
		src.Guard = adminGuard{p.guard}
	}
	go func() {
		if err := admin.Serve(ctx, ln, admin.Handler(src), log); err != nil {
			log.Error("admin api stopped", "socket", path, "err", err)
		}
	}()
	log.Info("admin api serving", "socket", path)
	return nil
}

type adminNode struct {
	a   *agent.Agent
	src agent.Source
	gw  *gatewayResolver
}

func (n adminNode) Node(ctx context.Context) (admin.Node, error) {
	node := n.a.Node()
	if node == nil {
		// Why there is none; reading the source changes nothing.
		_, err := n.src.Node(ctx)
		if err == nil {
			err = errors.New("NodeConfig not applied yet")
		}
		return admin.Node{}, err
	}
	out := admin.Node{Name: node.Name, Pool6: node.Pool6, Pool4: node.Pool4}
	node = n.gw.resolve(node)
	if node.BGP != nil {
		out.ASN = node.BGP.ASN
		for _, p := range node.BGP.Peers {
			out.Peers = append(out.Peers, admin.Peer{Address: p.Address, ASN: p.ASN, Protocol: bird.PeerName(p.Address)})
		}
	}
	return out, nil
}

// gatewayResolver gives peers written as the node's default gateway the
// address BIRD peers with (as the BGP controller resolves them), so
// flockctl bgp and the peer metrics match them to BIRD's protocols;
// unresolvable ones keep no address and show as missing. Every metrics
// scrape, usage report and flockctl call resolves, so it opens one netlink
// socket on first need and keeps it for the agent's life (netlink.Handle
// serialises requests, so callers share it); a socket that failed is
// closed and opened again on the next call.
type gatewayResolver struct {
	mu   sync.Mutex
	ifs  gatewayLister
	open func() (gatewayLister, error) // nil: routing.NewInterfaces
}

// gatewayLister is what gatewayResolver reads (routing.Interfaces).
type gatewayLister interface {
	DefaultGateways() ([]netip.Addr, error)
	Close()
}

func (g *gatewayResolver) resolve(node *model.Node) *model.Node {
	if node.BGP == nil || !slices.ContainsFunc(node.BGP.Peers, func(p model.Peer) bool { return p.DefaultGateway != 0 }) {
		return node
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ifs == nil {
		open := g.open
		if open == nil {
			open = func() (gatewayLister, error) { return routing.NewInterfaces() }
		}
		ifs, err := open()
		if err != nil {
			return node
		}
		g.ifs = ifs
	}
	gws, err := g.ifs.DefaultGateways()
	if err != nil {
		g.ifs.Close()
		g.ifs = nil
		return node
	}
	resolved, err := routing.ResolvePeers(node, gws)
	if err != nil {
		return node
	}
	return resolved
}

type adminAllocations struct{ st *store.Store }

func (s adminAllocations) Allocations() []admin.Allocation {
	recs := s.st.List()
	out := make([]admin.Allocation, 0, len(recs))
	for _, r := range recs {
		out = append(out, admin.Allocation{
			Namespace: r.Namespace, Name: r.Name, UID: r.UID, ContainerID: r.ContainerID, IfName: r.IfName,
			HostIface: r.HostIface, Netns: r.Netns, IPv6: r.IPv6, IPv4: r.IPv4, Anycast: r.Anycast,
		})
	}
	return out
}

type adminBIRD struct{ c *bird.Client }

func (b adminBIRD) Protocols(ctx context.Context) ([]admin.Protocol, error) {
	ps, err := b.c.Protocols(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]admin.Protocol, 0, len(ps))
	for _, p := range ps {
		out = append(out, admin.Protocol{Name: p.Name, Proto: p.Proto, State: p.State, Since: p.Since, Info: p.Info, Established: p.Established()})
	}
	return out, nil
}

// adminServices shows the Service announcer's last decisions.
type adminServices struct{ r *lbannounce.Reconciler }

func (a adminServices) Services() admin.Services {
	out := admin.Services{Synced: a.r.Synced()}
	for _, d := range a.r.Decisions() {
		out.Items = append(out.Items, admin.ServiceAddress{Service: d.Service, Address: d.Addr, Policy: d.Policy, Pool: d.Pool,
			LocalEndpoints: d.Endpoints.Local, ReadyEndpoints: d.Endpoints.Ready, Announced: d.Announce, Reason: d.Reason})
	}
	return out
}

type adminAnycast struct {
	r     *agent.AnycastReconciler
	ready agent.Readiness
}

func (a adminAnycast) Anycast() admin.AnycastState {
	st := a.r.State()
	out := admin.AnycastState{Announced: st.Announced, BGP: st.BGP, Routes: make(map[netip.Addr][]admin.NextHop, len(st.Routes))}
	for addr, hops := range st.Routes {
		for _, h := range hops {
			out.Routes[addr] = append(out.Routes[addr], admin.NextHop{Via: h.Via, Dev: h.Dev})
		}
	}
	return out
}

func (a adminAnycast) PodReady(namespace, name string) bool { return a.ready.PodReady(namespace, name) }

type adminPolicy struct{ c *netpol.Controller }

func (p adminPolicy) Policy() admin.Policy {
	ap, synced := p.c.Applied()
	out := admin.Policy{Synced: synced, LastApply: ap.LastApply, LastChange: ap.LastChange, LastErrorTime: ap.LastErrorTime}
	if ap.LastError != nil {
		out.LastError = ap.LastError.Error()
	}
	if ap.Model == nil {
		return out
	}
	for _, v := range policy.Verdicts(ap.Model) {
		out.Pods = append(out.Pods, admin.PodPolicy{Namespace: v.Namespace, Name: v.Name, Iface: v.Iface, Ingress: verdict(v.Ingress), Egress: verdict(v.Egress)})
	}
	return out
}

func verdict(v policy.Verdict) admin.Verdict {
	switch {
	case !v.Isolated:
		return admin.Verdict{Mode: admin.Unrestricted}
	case v.Chain == "":
		return admin.Verdict{Mode: admin.DenyAll}
	default:
		return admin.Verdict{Mode: admin.AllowList, Chain: v.Chain}
	}
}

type adminGuard struct{ g *policy.Guard }

func (g adminGuard) Drops(ctx context.Context) (uint64, uint64, error) {
	d, err := g.g.Drops(ctx)
	return d.Packets, d.Bytes, err
}
