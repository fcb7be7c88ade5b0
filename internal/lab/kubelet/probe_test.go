package kubelet

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
)

func TestParamsDefaults(t *testing.T) {
	got := paramsOf(&v1.Probe{})
	want := probeParams{Period: 10 * time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3}
	if got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	got = paramsOf(&v1.Probe{InitialDelaySeconds: 2, PeriodSeconds: 3, TimeoutSeconds: 4, SuccessThreshold: 5, FailureThreshold: 6})
	want = probeParams{InitialDelay: 2 * time.Second, Period: 3 * time.Second, Timeout: 4 * time.Second, SuccessThreshold: 5, FailureThreshold: 6}
	if got != want {
		t.Errorf("explicit = %+v, want %+v", got, want)
	}
}

func TestReadiness(t *testing.T) {
	for _, tc := range []struct {
		name          string
		succ, fail    int
		results, want string // one char per probe: + success, - failure; ready after each: R or .
	}{
		{"starts not ready, one success readies", 1, 3, "-+", ".R"},
		{"failures below threshold keep ready", 1, 3, "+--+--", "RRRRRR"},
		{"failure threshold unreadies", 1, 3, "+---", "RRR."},
		{"success threshold", 3, 1, "++-++++", ".....RR"},
		{"success threshold, then one failure unreadies", 2, 1, "++-++", ".R..R"},
		{"interleaved never reach thresholds", 2, 2, "+-+-+-", "......"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := readiness{p: probeParams{SuccessThreshold: tc.succ, FailureThreshold: tc.fail}}
			var got []byte
			for _, c := range []byte(tc.results) {
				was := r.ready
				changed := r.observe(c == '+')
				if changed != (was != r.ready) {
					t.Fatalf("observe said changed=%v, readiness went %v -> %v", changed, was, r.ready)
				}
				if r.ready {
					got = append(got, 'R')
				} else {
					got = append(got, '.')
				}
			}
			if string(got) != tc.want {
				t.Errorf("readiness %s, want %s", got, tc.want)
			}
		})
	}
}

// TestRunProber checks the prober's timing in virtual time: the first
// attempt after the initial delay, then one per period, each bounded by
// the timeout, and readiness changes reported when the thresholds are met.
func TestRunProber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		p := probeParams{InitialDelay: 5 * time.Second, Period: 2 * time.Second, Timeout: time.Second, SuccessThreshold: 2, FailureThreshold: 2}
		// Attempts: fail, ok, ok (ready), hang (timeout: a failure), fail (not ready), ok, ok (ready).
		script := []string{"fail", "ok", "ok", "hang", "fail", "ok", "ok"}
		var attempts []time.Duration
		type change struct {
			At    time.Duration
			Ready bool
		}
		var changes []change
		var failures int
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			runProber(ctx, p, func(ctx context.Context) error {
				i := len(attempts)
				attempts = append(attempts, time.Since(start))
				if i >= len(script) {
					return nil
				}
				switch script[i] {
				case "fail":
					return errors.New("refused")
				case "hang":
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			}, func(ready bool) {
				changes = append(changes, change{time.Since(start), ready})
			}, func(error) { failures++ })
		}()
		time.Sleep(5*time.Second + 6*2*time.Second + time.Second + 500*time.Millisecond)
		synctest.Wait()
		cancel()
		<-done
		s := time.Second
		wantAttempts := []time.Duration{5 * s, 7 * s, 9 * s, 11 * s, 14 * s, 16 * s, 18 * s}
		if d := cmp.Diff(wantAttempts, attempts); d != "" {
			t.Errorf("attempt times (-want +got):\n%s", d)
		}
		wantChanges := []change{{9 * s, true}, {14 * s, false}, {18 * s, true}}
		if d := cmp.Diff(wantChanges, changes); d != "" {
			t.Errorf("readiness changes (-want +got):\n%s", d)
		}
		if failures != 3 {
			t.Errorf("%d failures reported, want 3", failures)
		}
	})
}
