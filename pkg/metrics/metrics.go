// Package metrics is flock-agent's Prometheus metrics: counters and
// histograms of what the agent does (CNI calls, allocation retries, policy
// applies, anycast announcements), and gauges read at every scrape from
// what the agent's components know (pools, BGP sessions, anycast, the
// policy table, per-pod drop counters, the control loops).
//
// Every name starts with flock_; labels are bounded: CNI verb and result
// code, address family and pool, BGP peer (the NodeConfig's), controller,
// and pod only on the drop counter (bounded by the node's pods).
//
// A nil *Metrics records nothing, so code that observes need not check.
// Registering one more counter is one line: m.Counter("name_total", "help").
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric of flock's.
const Namespace = "flock"

// DefaultAddr is where the agent serves /metrics, /healthz and /readyz by
// default: loopback only (the node's, with hostNetwork), so nothing is
// exposed beyond the node unless the operator says so.
const DefaultAddr = "127.0.0.1:9983"

// PathMetrics is the scrape path.
const PathMetrics = "/metrics"

// Metrics holds the agent's metrics and the registry they are in.
type Metrics struct {
	reg *prometheus.Registry

	cniRequests      *prometheus.CounterVec
	cniDuration      *prometheus.HistogramVec
	ipamRetries      prometheus.Counter
	ipamConflicts    prometheus.Counter
	policyApply      prometheus.Histogram
	policyErrors     prometheus.Counter
	policyRepairs    prometheus.Counter
	anycastAnnounce  prometheus.Histogram
	lbAnnounce       prometheus.Histogram
	statusWrites     prometheus.Counter
	statusWriteFails prometheus.Counter
}

// New registers the agent's metrics and the Go runtime and process
// collectors in a registry of its own.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{reg}
	return &Metrics{
		reg: reg,
		cniRequests: f.counterVec("cni_requests_total",
			"CNI calls the agent answered, by verb and result code (0: success, else the CNI error code).", "verb", "code"),
		cniDuration: f.histogramVec("cni_request_duration_seconds",
			"How long the agent took to answer a CNI call, by verb.",
			[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "verb"),
		ipamRetries: f.counter("ipam_allocation_retries_total",
			"IPv6 addresses an ip-algo yielded that were already in use, so IPAM tried the next one."),
		ipamConflicts: f.counter("ipam_allocation_conflicts_total",
			"Allocations on disk whose address another allocation already held when the allocator was seeded."),
		policyApply: f.histogram("policy_apply_duration_seconds",
			"How long a full NetworkPolicy apply took (translate excluded; a skipped, unchanged one included).",
			[]float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}),
		policyErrors: f.counter("policy_apply_errors_total",
			"NetworkPolicy applies that failed (the table stays as it was)."),
		policyRepairs: f.counter("policy_drift_repairs_total",
			"Times the nftables table differed from what was loaded and was loaded again."),
		anycastAnnounce: f.histogram("anycast_announce_latency_seconds",
			"From the event that made an anycast address active (a pod Ready, an ADD) to its announcement to BIRD.",
			[]float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10}),
		lbAnnounce: f.histogram("lb_announce_latency_seconds",
			"From a Service or EndpointSlice change to BIRD running the config with the changed set of LoadBalancer addresses (announced or withdrawn).",
			[]float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10}),
		statusWrites: f.counter("nodeconfig_status_writes_total",
			"Writes of the NodeConfig's status.usage."),
		statusWriteFails: f.counter("nodeconfig_status_write_errors_total",
			"Writes of the NodeConfig's status.usage that failed."),
	}
}

// Registry is where the metrics are; extra collectors go in with Register.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text (or OpenMetrics)
// format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Counter registers and returns one more counter, flock_<name>: what
// another part of the agent counts (swept leaks, spoofed packets) becomes a
// metric with m.Counter("leaks_swept_total", "…").Add(n).
func (m *Metrics) Counter(name, help string) prometheus.Counter {
	return factory{m.reg}.counter(name, help)
}

// CounterFunc registers a counter read from f at every scrape, for a
// component that keeps its own count: m.CounterFunc("x_total", "…", c.Count).
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, f))
}

// ObserveCNI records one answered CNI call; code 0 is success.
func (m *Metrics) ObserveCNI(verb string, code uint, d time.Duration) {
	if m == nil {
		return
	}
	m.cniRequests.WithLabelValues(verb, strconv.FormatUint(uint64(code), 10)).Inc()
	m.cniDuration.WithLabelValues(verb).Observe(d.Seconds())
}

// IPAMRetry counts one IPv6 candidate that was in use.
func (m *Metrics) IPAMRetry() {
	if m != nil {
		m.ipamRetries.Inc()
	}
}

// IPAMConflict counts one allocation on disk that conflicted.
func (m *Metrics) IPAMConflict() {
	if m != nil {
		m.ipamConflicts.Inc()
	}
}

// PolicyApplied records one full NetworkPolicy apply.
func (m *Metrics) PolicyApplied(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.policyApply.Observe(d.Seconds())
	if err != nil {
		m.policyErrors.Inc()
	}
}

// PolicyRepaired counts one drift repair.
func (m *Metrics) PolicyRepaired() {
	if m != nil {
		m.policyRepairs.Inc()
	}
}

// AnycastAnnounced records how long an address took to be announced.
func (m *Metrics) AnycastAnnounced(d time.Duration) {
	if m != nil {
		m.anycastAnnounce.Observe(d.Seconds())
	}
}

// LBAnnounced records how long a change of the announced LoadBalancer
// addresses took from its cause to BIRD running it.
func (m *Metrics) LBAnnounced(d time.Duration) {
	if m != nil {
		m.lbAnnounce.Observe(d.Seconds())
	}
}

// StatusWritten records one write of the NodeConfig's status.
func (m *Metrics) StatusWritten(err error) {
	if m == nil {
		return
	}
	m.statusWrites.Inc()
	if err != nil {
		m.statusWriteFails.Inc()
	}
}

type factory struct{ reg prometheus.Registerer }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}
