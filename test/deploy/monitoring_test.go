package deploy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/fritzlab/flock/pkg/health"
	"github.com/fritzlab/flock/pkg/metrics"
)

// allMetrics is every metric name the agent can expose: a registry with
// each part of the state present, one event of each kind observed.
func allMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	now := time.Now()
	m.Watch(metrics.State{
		Pools: func() []metrics.Pool {
			return []metrics.Pool{{Family: "ipv6", CIDR: "2001:db8::/64", Size: 10, Allocated: 1}}
		},
		Peers: func(context.Context) ([]metrics.Peer, error) {
			return []metrics.Peer{{Address: "192.0.2.1", State: "Established", Established: true, Since: now,
				Imported: map[string]float64{"ipv4": 1}, Exported: map[string]float64{"ipv4": 1}, BFD: "Up"}}, nil
		},
		Anycast: func() metrics.Anycast { return metrics.Anycast{Addresses: 1} },
		LB:      func() metrics.LB { return metrics.LB{Addresses: 1, Announced6: 1} },
		Policy:  func() metrics.Policy { return metrics.Policy{Rules: 1, LastApply: now} },
		Drops: func(context.Context) ([]metrics.Drop, error) {
			return []metrics.Drop{{Pod: "default/a", Direction: "ingress", Packets: 1}}, nil
		},
		Loops: func() []health.LoopState { return []health.LoopState{{Name: "pools", LastOK: now, Started: now}} },
	})
	m.ObserveCNI("ADD", 0, time.Millisecond)
	m.IPAMRetry()
	m.IPAMConflict()
	m.PolicyApplied(time.Millisecond, nil)
	m.PolicyRepaired()
	m.AnycastAnnounced(time.Millisecond)
	m.LBAnnounced(time.Millisecond)
	m.StatusWritten(nil)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		}
	}
	return names
}

// metricRef finds metric names in PromQL: flock_, go_ and process_ ones.
var metricRef = regexp.MustCompile(`\b(?:flock|go|process)_[a-zA-Z0-9_]+\b`)

func checkRefs(t *testing.T, where string, exprs []string, known map[string]bool) {
	t.Helper()
	if len(exprs) == 0 {
		t.Fatalf("%s: no expressions found", where)
	}
	for _, e := range exprs {
		refs := metricRef.FindAllString(e, -1)
		if len(refs) == 0 {
			t.Errorf("%s: expression %q names no flock metric", where, e)
		}
		for _, r := range refs {
			if !known[r] {
				t.Errorf("%s: expression %q uses %s, which the agent does not expose", where, e, r)
			}
		}
	}
}

func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir(t), "monitoring", "flock-alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(b, &doc); err != nil {
		t.Fatalf("flock-alerts.yaml: %v", err)
	}
	var exprs, alerts []string
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("rule %+v lacks alert, expr, a severity or a summary", r)
			}
			if _, err := time.ParseDuration(r.For); r.For != "" && err != nil {
				t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
			}
			exprs, alerts = append(exprs, r.Expr), append(alerts, r.Alert)
		}
	}
	for _, want := range []string{"FlockPoolNearlyFull", "FlockBGPSessionDown", "FlockPolicyApplyFailing"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no %s alert (have %v)", want, alerts)
		}
	}
	checkRefs(t, "flock-alerts.yaml", exprs, allMetrics(t))
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir(t), "monitoring", "flock-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Query any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("flock-dashboard.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard without title, uid or panels")
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	known := allMetrics(t)
	checkRefs(t, "flock-dashboard.json", exprs, known)
	// Every family of the agent's own is on the dashboard somewhere.
	all := strings.Join(exprs, "\n")
	for name := range known {
		if strings.HasPrefix(name, "flock_") && !strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_count") &&
			!strings.Contains(all, name) && !slices.Contains(offDashboard, name) {
			t.Errorf("metric %s is on no dashboard panel", name)
		}
	}
}

// offDashboard are the metrics the dashboard leaves to ad-hoc queries.
var offDashboard = []string{
	"flock_cni_request_duration_seconds", "flock_anycast_announce_latency_seconds", "flock_policy_apply_duration_seconds",
	"flock_bgp_peers_configured", "flock_bgp_session_state", "flock_bgp_session_state_seconds", "flock_bgp_bfd_session_up",
	"flock_ipam_allocation_retries_total", "flock_ipam_allocation_conflicts_total", "flock_policy_sets",
	"flock_policy_last_apply_timestamp_seconds", "flock_policy_drop_counters_up", "flock_reconcile_last_success_timestamp_seconds",
	"flock_nodeconfig_status_writes_total", "flock_nodeconfig_status_write_errors_total",
}
