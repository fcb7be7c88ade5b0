package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"time"
)

// Node is the node's configuration as the agent applied it.
type Node struct {
	Name         string
	Pool6, Pool4 netip.Prefix
	// ASN and Peers are spec.bgp; Peers name the BIRD protocol of each.
	ASN   uint32
	Peers []Peer
}

// Peer is a configured BGP neighbour and the name of its BIRD protocol.
type Peer struct {
	Address  netip.Addr
	ASN      uint32
	Protocol string
}

// NodeSource is the agent's applied configuration; an error says why there
// is none.
type NodeSource interface {
	Node(ctx context.Context) (Node, error)
}

// AllocationSource is the agent's allocations (the store).
type AllocationSource interface {
	Allocations() []Allocation
}

// Protocol is a row of BIRD's `show protocols`.
type Protocol struct {
	Name, Proto, State, Since, Info string
	Established                     bool
}

// BIRDSource asks BIRD for its protocols (its control socket).
type BIRDSource interface {
	Protocols(ctx context.Context) ([]Protocol, error)
}

// AnycastState is what the anycast reconciler last did.
type AnycastState struct {
	// Routes are the routes last installed, by address.
	Routes map[netip.Addr][]NextHop
	// Announced are the addresses last handed to BIRD; BGP says whether
	// there is a BIRD to hand them to.
	Announced []netip.Addr
	BGP       bool
}

// AnycastSource is the anycast reconciler and the pods' readiness.
type AnycastSource interface {
	Anycast() AnycastState
	PodReady(namespace, name string) bool
}

// ServicesSource is the LoadBalancer announcer: Services' Enabled is
// ignored (a nil source is off).
type ServicesSource interface {
	Services() Services
}

// PolicySource is the NetworkPolicy controller: Policy's Enabled is ignored
// (a nil source is off) and its Pods are those of the last applied ruleset.
type PolicySource interface {
	Policy() Policy
}

// GuardSource is the anti-spoofing guard: its drop counter.
type GuardSource interface {
	Drops(ctx context.Context) (packets, bytes uint64, err error)
}

// Sources are what the API reads. A nil BIRD, Anycast or Policy means the
// agent runs without that part.
type Sources struct {
	Mode        string
	Node        NodeSource
	Allocations AllocationSource
	BIRD        BIRDSource
	Anycast     AnycastSource
	Services    ServicesSource
	Policy      PolicySource
	// Drops and Doctor are nil where there is nothing to read.
	Drops  DropSource
	Doctor DoctorSource
	Trace  TraceSource
	Guard  GuardSource
}

// birdTimeout bounds a question to BIRD, so that a hung BIRD delays a
// status by at most this long.
const birdTimeout = 3 * time.Second

// Handler serves the API from src.
func Handler(src Sources) http.Handler {
	s := &server{src: src}
	routes := map[string]func(*http.Request) any{
		PathStatus:      s.status,
		PathAllocations: func(*http.Request) any { return Allocations{Items: s.allocations()} },
		PathBGP: func(r *http.Request) any {
			node, err := s.src.Node.Node(r.Context())
			return s.bgp(r.Context(), node, err)
		},
		PathAnycast: func(*http.Request) any { return s.anycast(s.allocations()) },
		PathPolicy:  func(*http.Request) any { return s.policy(s.allocations()) },
		PathServices: func(*http.Request) any {
			if s.src.Services == nil {
				return Services{Items: []ServiceAddress{}}
			}
			out := s.src.Services.Services()
			out.Enabled = true
			if out.Items == nil {
				out.Items = []ServiceAddress{}
			}
			return out
		},
		PathDrops: s.drops,
		PathTrace: s.trace,
		PathDoctor: func(r *http.Request) any {
			if s.src.Doctor == nil {
				return Doctor{Checks: []string{}, Problems: []Problem{}}
			}
			return s.src.Doctor.Doctor(r.Context())
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, ok := routes[r.URL.Path]
		switch {
		case !ok:
			reply(w, http.StatusNotFound, Error{Error: fmt.Sprintf("no such path %s", r.URL.Path)})
		case r.Method != http.MethodGet:
			w.Header().Set("Allow", http.MethodGet)
			reply(w, http.StatusMethodNotAllowed, Error{Error: fmt.Sprintf("%s %s: the admin API is read-only, use GET", r.Method, r.URL.Path)})
		default:
			v := route(r)
			if e, ok := v.(requestError); ok {
				reply(w, e.code, Error{Error: e.msg})
				return
			}
			reply(w, http.StatusOK, v)
		}
	})
}

func reply(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode reply"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// Serve answers on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin api: %w", err)
	}
	return nil
}

type server struct{ src Sources }

func (s *server) allocations() []Allocation {
	items := s.src.Allocations.Allocations()
	if items == nil {
		items = []Allocation{}
	}
	slices.SortFunc(items, func(a, b Allocation) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.ContainerID, b.ContainerID), cmp.Compare(a.IfName, b.IfName))
	})
	return items
}

func (s *server) status(r *http.Request) any {
	st := Status{Mode: s.src.Mode, Pools: []Pool{}}
	allocs := s.allocations()
	st.Allocations = len(allocs)
	node, err := s.src.Node.Node(r.Context())
	if err != nil {
		st.ConfigError = err.Error()
	} else {
		st.Node, st.Configured = node.Name, true
		for _, p := range []struct {
			family string
			cidr   netip.Prefix
		}{{"ipv6", node.Pool6}, {"ipv4", node.Pool4}} {
			if !p.cidr.IsValid() {
				continue
			}
			pool := Pool{Family: p.family, CIDR: p.cidr}
			for _, a := range allocs {
				if p.cidr.Contains(a.IPv6) || p.cidr.Contains(a.IPv4) {
					pool.Allocated++
				}
			}
			st.Pools = append(st.Pools, pool)
		}
	}

	bgp := s.bgp(r.Context(), node, err)
	st.BGP = BGPSummary{Enabled: bgp.Enabled, Error: bgp.Error}
	for _, ses := range bgp.Sessions {
		if ses.State == StateMissing || ses.State == StateUnknown {
			continue
		}
		st.BGP.Sessions++
		if ses.Established {
			st.BGP.Established++
		}
	}

	ac := s.anycast(allocs)
	st.Anycast.Enabled = ac.Enabled
	for _, rt := range ac.Routes {
		st.Anycast.Addresses++
		if rt.Routed {
			st.Anycast.Routed++
		}
		if rt.Announced {
			st.Anycast.Announced++
		}
	}

	pol := s.policy(allocs)
	st.Policy = PolicySummary{Enabled: pol.Enabled, Synced: pol.Synced, LastApply: pol.LastApply, LastError: pol.LastError}
	for _, p := range pol.Pods {
		if restricted(p.Ingress) || restricted(p.Egress) {
			st.Policy.Restricted++
		}
	}
	if s.src.Guard != nil {
		st.AntiSpoofing.Enabled = true
		p, b, err := s.src.Guard.Drops(r.Context())
		st.AntiSpoofing.DroppedPackets, st.AntiSpoofing.DroppedBytes = p, b
		if err != nil {
			st.AntiSpoofing.Error = err.Error()
		}
	}
	return st
}

func restricted(v Verdict) bool { return v.Mode == DenyAll || v.Mode == AllowList }

// bgp joins BIRD's BGP protocols with the configured peers of node (none
// when nodeErr says there is no node): each peer with its protocol's
// state, a peer BIRD lacks as missing, a protocol of no peer as it is.
func (s *server) bgp(ctx context.Context, node Node, nodeErr error) BGP {
	if s.src.BIRD == nil {
		return BGP{Sessions: []Session{}}
	}
	out := BGP{Enabled: true, Sessions: []Session{}}
	var peers []Peer
	if nodeErr == nil {
		out.ASN, peers = node.ASN, node.Peers
	}
	ctx, cancel := context.WithTimeout(ctx, birdTimeout)
	defer cancel()
	protos, err := s.src.BIRD.Protocols(ctx)
	if err != nil {
		out.Error = fmt.Sprintf("BIRD unreachable: %v", err)
	}
	byName := map[string]Protocol{}
	for _, p := range protos {
		if p.Proto == "BGP" {
			byName[p.Name] = p
		}
	}
	for _, peer := range peers {
		ses := Session{Peer: peer.Address, PeerASN: peer.ASN, Protocol: peer.Protocol, State: StateMissing}
		if err != nil {
			ses.State = StateUnknown
		}
		if p, ok := byName[peer.Protocol]; ok {
			ses.State, ses.Since, ses.Info, ses.Established = p.State, p.Since, p.Info, p.Established
			delete(byName, peer.Protocol)
		}
		out.Sessions = append(out.Sessions, ses)
	}
	for _, p := range protos {
		if _, ok := byName[p.Name]; ok {
			out.Sessions = append(out.Sessions, Session{Protocol: p.Name, State: p.State, Since: p.Since, Info: p.Info, Established: p.Established})
		}
	}
	return out
}

// anycast lists every anycast address a pod of allocs asks for, with the
// route and announcement the reconciler last made for it.
func (s *server) anycast(allocs []Allocation) Anycast {
	if s.src.Anycast == nil {
		return Anycast{Routes: []AnycastRoute{}}
	}
	st := s.src.Anycast.Anycast()
	out := Anycast{Enabled: true, BGP: st.BGP, Routes: []AnycastRoute{}}
	byAddr := map[netip.Addr]*AnycastRoute{}
	route := func(a netip.Addr) *AnycastRoute {
		if r, ok := byAddr[a]; ok {
			return r
		}
		hops := slices.Clone(st.Routes[a])
		r := &AnycastRoute{Address: a, Routed: len(hops) > 0, Announced: slices.Contains(st.Announced, a), NextHops: hops, Pods: []AnycastPod{}}
		byAddr[a] = r
		return r
	}
	for _, al := range allocs {
		ready := len(al.Anycast) > 0 && s.src.Anycast.PodReady(al.Namespace, al.Name)
		for _, a := range al.Anycast {
			r := route(a)
			r.Pods = append(r.Pods, AnycastPod{Namespace: al.Namespace, Name: al.Name, Ready: ready})
		}
	}
	// Routes and announcements of no current allocation (a pod deleted a
	// moment ago) show too: they are in the kernel and in BIRD.
	for a := range st.Routes {
		route(a)
	}
	for _, a := range st.Announced {
		route(a)
	}
	for _, r := range byAddr {
		out.Routes = append(out.Routes, *r)
	}
	slices.SortFunc(out.Routes, func(a, b AnycastRoute) int { return a.Address.Compare(b.Address) })
	return out
}

// policy is the ruleset last applied, with the attached pods (allocs) it
// does not cover yet as pending.
func (s *server) policy(allocs []Allocation) Policy {
	if s.src.Policy == nil {
		return Policy{Pods: []PodPolicy{}}
	}
	p := s.src.Policy.Policy()
	p.Enabled = true
	pods := slices.Clone(p.Pods)
	seen := map[string]bool{}
	for _, pp := range pods {
		seen[pp.Iface] = true
	}
	for _, a := range allocs {
		if !seen[a.HostIface] {
			pend := Verdict{Mode: Pending}
			pods = append(pods, PodPolicy{Namespace: a.Namespace, Name: a.Name, Iface: a.HostIface, Ingress: pend, Egress: pend})
		}
	}
	slices.SortFunc(pods, func(a, b PodPolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Iface, b.Iface))
	})
	if pods == nil {
		pods = []PodPolicy{}
	}
	p.Pods = pods
	return p
}

// drops lists the pods' drop counters, most dropped first.
func (s *server) drops(r *http.Request) any {
	out := Drops{Items: []PodDrop{}}
	if s.src.Drops == nil {
		return out
	}
	out.Enabled = true
	items, err := s.src.Drops.Drops(r.Context())
	if err != nil {
		out.Error = err.Error()
		return out
	}
	slices.SortFunc(items, func(a, b PodDrop) int {
		if c := cmp.Compare(b.Ingress+b.Egress, a.Ingress+a.Egress); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	out.Items = append(out.Items, items...)
	return out
}

// requestError is a route's answer to a request it cannot serve.
type requestError struct {
	code int
	msg  string
}

func (s *server) trace(r *http.Request) any {
	if s.src.Trace == nil {
		return requestError{http.StatusNotFound, "NetworkPolicy is off on this node (file mode, or --netpol=false): every packet passes"}
	}
	src, dst, proto, port, err := ParseTraceQuery(r.URL.Query())
	if err != nil {
		return requestError{http.StatusBadRequest, "trace: " + err.Error()}
	}
	t, err := s.src.Trace.Trace(r.Context(), src, dst, proto, port)
	if err != nil {
		return requestError{http.StatusServiceUnavailable, "trace: " + err.Error()}
	}
	return t
}
