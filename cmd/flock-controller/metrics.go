package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fritzlab/flock/pkg/lbipam"
	"github.com/fritzlab/flock/pkg/metrics"
)

// assignedDesc is flock_lb_addresses_assigned: read from the Service
// address controller at every scrape, so only the leader reports it.
var assignedDesc = prometheus.NewDesc(metrics.Namespace+"_lb_addresses_assigned",
	"Addresses of a ServiceAddressPool assigned to LoadBalancer Services, by pool and family (ipv6, ipv4); only the leading replica reports it.",
	[]string{"pool", "family"}, nil)

// assignedCollector reads lbipam.Controller.Assigned.
type assignedCollector struct{ c *lbipam.Controller }

func (a assignedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- assignedDesc }

func (a assignedCollector) Collect(ch chan<- prometheus.Metric) {
	for _, u := range a.c.Assigned() {
		ch <- prometheus.MustNewConstMetric(assignedDesc, prometheus.GaugeValue, float64(u.Used), u.Pool, strings.ToLower(string(u.Family)))
	}
}

// serveMetrics serves /metrics on addr until ctx ends; an empty addr
// serves nothing.
func serveMetrics(ctx context.Context, log *slog.Logger, addr string, lb *lbipam.Controller) error {
	if addr == "" {
		return nil // no registry either
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), assignedCollector{lb})
	mux := http.NewServeMux()
	mux.Handle("GET "+metrics.PathMetrics, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return metrics.Serve(ctx, log, addr, mux, metrics.PathMetrics)
}
