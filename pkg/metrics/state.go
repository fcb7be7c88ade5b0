package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fritzlab/flock/pkg/health"
)

// State is where the gauges come from: each function is asked at every
// scrape; a nil one leaves its metrics out (that part is off).
type State struct {
	// Pools are the node's pools with their usage.
	Pools func() []Pool
	// Peers are the NodeConfig's BGP peers as BIRD sees them; an error
	// means BIRD could not be asked (flock_bird_up 0).
	Peers func(ctx context.Context) ([]Peer, error)
	// Anycast is the anycast reconciler's state.
	Anycast func() Anycast
	// LB is the LoadBalancer announcer's state.
	LB func() LB
	// Policy is the NetworkPolicy table last loaded.
	Policy func() Policy
	// Drops are the per-pod drop counters of the policy table.
	Drops func(ctx context.Context) ([]Drop, error)
	// Loops are the control loops (flock_reconcile_*).
	Loops func() []health.LoopState
	// Now is time.Now unless a test sets it.
	Now func() time.Time
}

// Pool is one pool's usage.
type Pool struct {
	Family string // ipv6 or ipv4
	CIDR   string
	// Size counts the addresses pods can get (IPv4 without network,
	// gateway and broadcast); Allocated those pods hold.
	Size, Allocated float64
}

// Peer is one BGP peer's session.
type Peer struct {
	Address string
	// State is the BGP state BIRD reports (Idle, Connect, Active, OpenSent,
	// OpenConfirm, Established), "missing" when BIRD has no protocol for it.
	State       string
	Established bool
	// Since is when the session entered its state; zero when unknown.
	Since time.Time
	// Imported and Exported are route counts by channel (ipv6, ipv4).
	Imported, Exported map[string]float64
	// BFD is the BFD session's state (Up, Down, Init, AdminDown), "" when
	// the peer has none.
	BFD string
}

// Anycast counts the node's anycast addresses.
type Anycast struct{ Addresses, Routed, Announced int }

// LB counts the LoadBalancer Service addresses this node decides on.
type LB struct {
	// Addresses are those in a ServiceAddressPool; Announced6 and
	// Announced4 those the node announces, by family.
	Addresses              int
	Announced6, Announced4 int
}

// Policy describes the loaded NetworkPolicy table.
type Policy struct {
	Rules, Sets, Elements int
	// RestrictedPods counts local pods under an ingress or egress policy.
	RestrictedPods int
	// LastApply is when the table was last confirmed or loaded (zero: never).
	LastApply time.Time
}

// Drop is one pod's dropped packets in one direction (ingress, egress).
type Drop struct {
	Pod       string // namespace/name
	Direction string
	Packets   float64
}

// BGP states, in the order BGP's FSM goes.
var bgpStates = []string{"Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established", "missing"}

// Watch registers the gauges read from s.
func (m *Metrics) Watch(s State) {
	if s.Now == nil {
		s.Now = time.Now
	}
	m.reg.MustRegister(&stateCollector{s: s})
}

type stateCollector struct{ s State }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(Namespace+"_"+name, help, labels, nil)
}

var (
	dPoolSize      = desc("ipam_pool_size", "Addresses pods can get from the pool.", "family", "pool")
	dPoolAllocated = desc("ipam_pool_allocated", "Addresses of the pool held by pods.", "family", "pool")
	dPoolFree      = desc("ipam_pool_free", "Addresses of the pool still free.", "family", "pool")

	dBirdUp        = desc("bird_up", "1 when BIRD's control socket answered this scrape.")
	dPeers         = desc("bgp_peers_configured", "BGP peers the NodeConfig configures.")
	dSessionUp     = desc("bgp_session_up", "1 while the BGP session with the peer is Established.", "peer")
	dSessionState  = desc("bgp_session_state", "1 for the BGP state the session with the peer is in.", "peer", "state")
	dSessionUptime = desc("bgp_session_state_seconds", "How long the session has been in its state (uptime while Established).", "peer")
	dRoutesIn      = desc("bgp_routes_imported", "Routes imported from the peer, by channel.", "peer", "channel")
	dRoutesOut     = desc("bgp_routes_exported", "Routes exported to the peer, by channel.", "peer", "channel")
	dBFDUp         = desc("bgp_bfd_session_up", "1 while the peer's BFD session is Up (only peers with BFD).", "peer")

	dAnyAddrs     = desc("anycast_addresses", "Anycast addresses local pods ask for.")
	dAnyRouted    = desc("anycast_routed", "Anycast addresses routed to a Ready local pod.")
	dAnyAnnounced = desc("anycast_announced", "Anycast addresses handed to BIRD to announce.")

	dLBAddrs     = desc("lb_addresses", "LoadBalancer Service addresses (of Services flock serves) inside a ServiceAddressPool.")
	dLBAnnounced = desc("lb_addresses_announced", "LoadBalancer Service addresses this node announces over BGP, by family.", "family")

	dPolicyRules     = desc("policy_rules", "Rules in flock's nftables table as last loaded.")
	dPolicySets      = desc("policy_sets", "Sets and maps in flock's nftables table as last loaded.")
	dPolicyElements  = desc("policy_set_elements", "Set and map elements in flock's nftables table as last loaded.")
	dPolicyPods      = desc("policy_restricted_pods", "Local pods under an ingress or egress NetworkPolicy.")
	dPolicyLastApply = desc("policy_last_apply_timestamp_seconds", "When the NetworkPolicy table was last loaded or found up to date.")
	dDropped         = desc("policy_dropped_packets_total", "Packets NetworkPolicy dropped, by local pod and direction.", "pod", "direction")
	dDropsUp         = desc("policy_drop_counters_up", "1 when the drop counters could be read this scrape.")

	dLoopLag    = desc("reconcile_lag_seconds", "Seconds since the controller's last successful pass.", "controller")
	dLoopErrors = desc("reconcile_errors_total", "Passes of the controller that failed.", "controller")
	dLoopLastOK = desc("reconcile_last_success_timestamp_seconds", "When the controller's last pass succeeded.", "controller")
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dPoolSize, dPoolAllocated, dPoolFree, dBirdUp, dPeers, dSessionUp, dSessionState,
		dSessionUptime, dRoutesIn, dRoutesOut, dBFDUp, dAnyAddrs, dAnyRouted, dAnyAnnounced, dLBAddrs, dLBAnnounced, dPolicyRules, dPolicySets,
		dPolicyElements, dPolicyPods, dPolicyLastApply, dDropped, dDropsUp, dLoopLag, dLoopErrors, dLoopLastOK} {
		ch <- d
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// scrapeTimeout bounds what one scrape waits for BIRD and nft.
const scrapeTimeout = 5 * time.Second

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	now := s.Now()
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if s.Pools != nil {
		for _, p := range s.Pools() {
			gauge(ch, dPoolSize, p.Size, p.Family, p.CIDR)
			gauge(ch, dPoolAllocated, p.Allocated, p.Family, p.CIDR)
			gauge(ch, dPoolFree, max(p.Size-p.Allocated, 0), p.Family, p.CIDR)
		}
	}
	if s.Peers != nil {
		peers, err := s.Peers(ctx)
		gauge(ch, dBirdUp, b2f(err == nil))
		gauge(ch, dPeers, float64(len(peers)))
		for _, p := range peers {
			gauge(ch, dSessionUp, b2f(p.Established), p.Address)
			for _, st := range bgpStates {
				gauge(ch, dSessionState, b2f(st == p.State), p.Address, st)
			}
			if !p.Since.IsZero() {
				gauge(ch, dSessionUptime, max(now.Sub(p.Since).Seconds(), 0), p.Address)
			}
			for chn, v := range p.Imported {
				gauge(ch, dRoutesIn, v, p.Address, chn)
			}
			for chn, v := range p.Exported {
				gauge(ch, dRoutesOut, v, p.Address, chn)
			}
			if p.BFD != "" {
				gauge(ch, dBFDUp, b2f(p.BFD == "Up"), p.Address)
			}
		}
	}
	if s.Anycast != nil {
		a := s.Anycast()
		gauge(ch, dAnyAddrs, float64(a.Addresses))
		gauge(ch, dAnyRouted, float64(a.Routed))
		gauge(ch, dAnyAnnounced, float64(a.Announced))
	}
	if s.LB != nil {
		l := s.LB()
		gauge(ch, dLBAddrs, float64(l.Addresses))
		gauge(ch, dLBAnnounced, float64(l.Announced6), "ipv6")
		gauge(ch, dLBAnnounced, float64(l.Announced4), "ipv4")
	}
	if s.Policy != nil {
		p := s.Policy()
		gauge(ch, dPolicyRules, float64(p.Rules))
		gauge(ch, dPolicySets, float64(p.Sets))
		gauge(ch, dPolicyElements, float64(p.Elements))
		gauge(ch, dPolicyPods, float64(p.RestrictedPods))
		if !p.LastApply.IsZero() {
			gauge(ch, dPolicyLastApply, float64(p.LastApply.UnixNano())/1e9)
		}
	}
	if s.Drops != nil {
		drops, err := s.Drops(ctx)
		gauge(ch, dDropsUp, b2f(err == nil))
		for _, d := range drops {
			ch <- prometheus.MustNewConstMetric(dDropped, prometheus.CounterValue, d.Packets, d.Pod, d.Direction)
		}
	}
	if s.Loops != nil {
		for _, l := range s.Loops() {
			since := l.LastOK
			if since.IsZero() {
				since = l.Started
			}
			gauge(ch, dLoopLag, max(now.Sub(since).Seconds(), 0), l.Name)
			ch <- prometheus.MustNewConstMetric(dLoopErrors, prometheus.CounterValue, float64(l.Errors), l.Name)
			if !l.LastOK.IsZero() {
				gauge(ch, dLoopLastOK, float64(l.LastOK.UnixNano())/1e9, l.Name)
			}
		}
	}
}
