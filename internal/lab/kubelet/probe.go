package kubelet

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
)

// probeParams are a probe's timing and thresholds with the API defaults
// applied (the API server defaults them, but objects built in memory or
// by older clients may leave them zero).
type probeParams struct {
	InitialDelay, Period, Timeout      time.Duration
	SuccessThreshold, FailureThreshold int
}

func paramsOf(p *v1.Probe) probeParams {
	or := func(v, def int32) int {
		if v <= 0 {
			return int(def)
		}
		return int(v)
	}
	return probeParams{
		InitialDelay:     time.Duration(max(p.InitialDelaySeconds, 0)) * time.Second,
		Period:           time.Duration(or(p.PeriodSeconds, 10)) * time.Second,
		Timeout:          time.Duration(or(p.TimeoutSeconds, 1)) * time.Second,
		SuccessThreshold: or(p.SuccessThreshold, 1),
		FailureThreshold: or(p.FailureThreshold, 3),
	}
}

// readiness is kubelet's result cache for one readiness probe: a container
// starts not ready; the result flips only after SuccessThreshold
// consecutive successes (to ready) or FailureThreshold consecutive failures
// (to not ready).
type readiness struct {
	p     probeParams
	ready bool
	last  int // 0 no result yet, 1 success, -1 failure
	run   int // consecutive results equal to last
}

// observe records one probe result and says whether readiness changed.
func (r *readiness) observe(ok bool) (changed bool) {
	res := -1
	if ok {
		res = 1
	}
	if res == r.last {
		r.run++
	} else {
		r.last, r.run = res, 1
	}
	if ok && r.run < r.p.SuccessThreshold || !ok && r.run < r.p.FailureThreshold {
		return false
	}
	changed = r.ready != ok
	r.ready = ok
	return changed
}

// probeFunc runs one probe attempt; it must give up when ctx ends.
type probeFunc func(ctx context.Context) error

// runProber probes after the initial delay and then every period, each
// attempt bounded by the timeout, until ctx ends. It calls setReady on
// every readiness change and failed on every failed attempt (kubelet
// records each as an Unhealthy event).
func runProber(ctx context.Context, p probeParams, probe probeFunc, setReady func(bool), failed func(error)) {
	r := readiness{p: p}
	wait := p.InitialDelay
	for {
		if !sleepCtx(ctx, wait) {
			return
		}
		wait = p.Period
		pctx, cancel := context.WithTimeout(ctx, p.Timeout)
		err := probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil && failed != nil {
			failed(err)
		}
		if r.observe(err == nil) {
			setReady(r.ready)
		}
	}
}
