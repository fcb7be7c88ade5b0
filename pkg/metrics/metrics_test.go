package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fritzlab/flock/pkg/health"
)

func TestEvents(t *testing.T) {
	m := New()
	m.ObserveCNI("ADD", 0, time.Millisecond)
	m.ObserveCNI("ADD", 0, time.Millisecond)
	m.ObserveCNI("ADD", 11, time.Millisecond)
	m.PolicyApplied(time.Millisecond, errors.New("nft failed"))
	extra := m.Counter("leaks_swept_total", "Allocations the leak sweep released.")
	extra.Add(3)
	want := `
# HELP flock_cni_requests_total CNI calls the agent answered, by verb and result code (0: success, else the CNI error code).
# TYPE flock_cni_requests_total counter
flock_cni_requests_total{code="0",verb="ADD"} 2
flock_cni_requests_total{code="11",verb="ADD"} 1
# HELP flock_leaks_swept_total Allocations the leak sweep released.
# TYPE flock_leaks_swept_total counter
flock_leaks_swept_total 3
# HELP flock_policy_apply_errors_total NetworkPolicy applies that failed (the table stays as it was).
# TYPE flock_policy_apply_errors_total counter
flock_policy_apply_errors_total 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"flock_cni_requests_total", "flock_leaks_swept_total", "flock_policy_apply_errors_total"); err != nil {
		t.Error(err)
	}
	var none *Metrics // observing into nil records nothing and does not panic
	none.ObserveCNI("DEL", 0, 0)
	none.PolicyRepaired()
}

func TestState(t *testing.T) {
	m := New()
	now := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	m.Watch(State{
		Now:   func() time.Time { return now },
		Pools: func() []Pool { return []Pool{{Family: "ipv4", CIDR: "10.0.0.0/24", Size: 253, Allocated: 3}} },
		Peers: func(context.Context) ([]Peer, error) {
			return []Peer{{Address: "192.0.2.1", State: "Established", Established: true, Since: now.Add(-time.Minute), BFD: "Down"}}, nil
		},
		Loops: func() []health.LoopState {
			return []health.LoopState{{Name: "pools", Started: now.Add(-time.Hour), LastOK: now.Add(-10 * time.Second), Errors: 2}}
		},
		Drops: func(context.Context) ([]Drop, error) { return nil, errors.New("no table") },
		LB:    func() LB { return LB{Addresses: 3, Announced6: 2, Announced4: 0} },
	})
	want := `
# HELP flock_ipam_pool_free Addresses of the pool still free.
# TYPE flock_ipam_pool_free gauge
flock_ipam_pool_free{family="ipv4",pool="10.0.0.0/24"} 250
# HELP flock_bgp_session_state_seconds How long the session has been in its state (uptime while Established).
# TYPE flock_bgp_session_state_seconds gauge
flock_bgp_session_state_seconds{peer="192.0.2.1"} 60
# HELP flock_bgp_bfd_session_up 1 while the peer's BFD session is Up (only peers with BFD).
# TYPE flock_bgp_bfd_session_up gauge
flock_bgp_bfd_session_up{peer="192.0.2.1"} 0
# HELP flock_reconcile_lag_seconds Seconds since the controller's last successful pass.
# TYPE flock_reconcile_lag_seconds gauge
flock_reconcile_lag_seconds{controller="pools"} 10
# HELP flock_reconcile_errors_total Passes of the controller that failed.
# TYPE flock_reconcile_errors_total counter
flock_reconcile_errors_total{controller="pools"} 2
# HELP flock_policy_drop_counters_up 1 when the drop counters could be read this scrape.
# TYPE flock_policy_drop_counters_up gauge
flock_policy_drop_counters_up 0
# HELP flock_lb_addresses_announced LoadBalancer Service addresses this node announces over BGP, by family.
# TYPE flock_lb_addresses_announced gauge
flock_lb_addresses_announced{family="ipv4"} 0
flock_lb_addresses_announced{family="ipv6"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "flock_ipam_pool_free", "flock_bgp_session_state_seconds",
		"flock_bgp_bfd_session_up", "flock_reconcile_lag_seconds", "flock_reconcile_errors_total", "flock_policy_drop_counters_up",
		"flock_lb_addresses_announced"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.Registry(), "flock_bgp_session_state"); n != len(bgpStates) {
		t.Errorf("%d bgp_session_state series, want one per state (%d)", n, len(bgpStates))
	}
}
