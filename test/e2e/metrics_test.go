package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/bird/birdtest"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the agent's /metrics as metric families by name.
func scrape(t *testing.T, get func(path string) (int, []byte, error)) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, err := get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v", code, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the sample of fam whose labels include want ("k=v" pairs); -1
// when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	fam, ok := fams[name]
	if !ok {
		return -1
	}
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// The real agent's metrics after a workload: ten ADDs move the ADD success
// counter by exactly ten and the pool's allocated gauge with it; every
// family the agent has in file mode is there with a plausible value.
func TestMetrics(t *testing.T) {
	n := startNode(t)
	get := func(path string) (int, []byte, error) { return n.HTTPGet(ctx(t), path) }
	before := scrape(t, get)
	adds := value(before, "flock_cni_requests_total", "verb=ADD", "code=0")
	if adds < 0 {
		adds = 0 // no ADD yet: the series does not exist
	}
	l := conflist(t, n)
	for i := range 10 {
		add(t, n, l, newPod(t, "default", fmt.Sprintf("m%d", i)))
	}
	after := scrape(t, get)
	if got := value(after, "flock_cni_requests_total", "verb=ADD", "code=0") - adds; got != 10 {
		t.Errorf("ADD success counter moved by %v after 10 ADDs, want 10", got)
	}
	if got := value(after, "flock_cni_request_duration_seconds", "verb=ADD"); got < 10 {
		t.Errorf("ADD latency histogram has %v samples, want at least 10", got)
	}
	for _, fam := range []string{"ipv6", "ipv4"} {
		pool := map[string]string{"ipv6": pool6.String(), "ipv4": pool4.String()}[fam]
		if got := value(after, "flock_ipam_pool_allocated", "family="+fam, "pool="+pool); got != 10 {
			t.Errorf("%s pool allocated = %v, want 10", fam, got)
		}
		size := value(after, "flock_ipam_pool_size", "family="+fam, "pool="+pool)
		free := value(after, "flock_ipam_pool_free", "family="+fam, "pool="+pool)
		if size <= 10 || free != size-10 {
			t.Errorf("%s pool size %v, free %v: want free = size - 10", fam, size, free)
		}
	}
	if got := value(after, "flock_ipam_pool_size", "family=ipv4"); got != 253 {
		t.Errorf("a /24 holds %v pod addresses, want 253", got)
	}
	for _, c := range []string{"pools", "anycast"} {
		if lag := value(after, "flock_reconcile_lag_seconds", "controller="+c); lag < 0 {
			t.Errorf("no reconcile lag for controller %s", c)
		}
		if errs := value(after, "flock_reconcile_errors_total", "controller="+c); errs != 0 {
			t.Errorf("controller %s: %v errors, want 0", c, errs)
		}
	}
	for _, name := range []string{"flock_anycast_addresses", "flock_anycast_routed", "flock_ipam_allocation_retries_total",
		"flock_ipam_allocation_conflicts_total", "flock_ipam_exhausted_total", "flock_antispoofing_dropped_packets_total",
		"flock_leaked_allocations_released_total", "go_goroutines", "process_resident_memory_bytes"} {
		if value(after, name) < 0 {
			t.Errorf("no %s", name)
		}
	}
	if code, body, err := get("/healthz"); err != nil || code != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("/healthz = %d %q, %v", code, body, err)
	}
	if code, body, err := get("/readyz"); err != nil || code != http.StatusOK {
		t.Errorf("/readyz = %d %q, %v", code, body, err)
	}
}

// /readyz is false until the NodeConfig is applied, true after, and false
// while BIRD is stopped with BGP on; CNI STATUS agrees at every step.
func TestReadyz(t *testing.T) {
	n := newNode(t)
	if err := os.Remove(filepath.Join(n.Dir, "nodeconfig.yaml")); err != nil {
		t.Fatal(err)
	}
	var b *birdtest.Sidecar
	if _, err := exec.LookPath("bird"); err == nil {
		birdtest.Uplink(t, n.NS.Name)
		b = birdtest.StartSidecar(t, n.NS.Name, n.Dir)
		n.AgentArgs = b.AgentArgs()
	} else {
		t.Log("bird not installed: /readyz with BIRD stopped not covered (apt-get install -y bird2)")
	}
	if err := n.StartAgent(); err != nil {
		t.Fatal(err)
	}
	l := conflist(t, n)
	readyz := func() (int, string) {
		code, body, err := n.HTTPGet(ctx(t), "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		return code, string(body)
	}
	agree := func(ready bool) bool {
		err := n.Status(ctx(t), l)
		return (err == nil) == ready
	}
	if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "nodeconfig:") || !agree(false) {
		t.Errorf("/readyz without a NodeConfig = %d %q (STATUS agrees: %v); want 503 naming the nodeconfig", code, body, agree(false))
	}
	conf := nodeConfig
	if b != nil {
		conf = nodeConfigBGP
	}
	if err := n.WriteNodeConfig(conf); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "/readyz to be ok once the NodeConfig is applied", func() bool {
		code, _ := readyz()
		return code == http.StatusOK && agree(true)
	})
	if b == nil {
		return
	}
	if _, err := b.Client.Command(ctx(t), "down"); err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Logf("bird down: %v", err)
	}
	waitUntil(t, "/readyz to fail while BIRD is stopped", func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "bird:") && agree(false)
	})
	birdtest.Start(t, n.NS.Name, b.Config, b.Socket, "-R")
	waitUntil(t, "/readyz to be ok again once BIRD is back", func() bool {
		code, _ := readyz()
		return code == http.StatusOK && agree(true)
	})
}
