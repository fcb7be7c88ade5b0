package main

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/metrics"
)

type sink struct {
	mu  sync.Mutex
	got []*v1alpha1.NodeUsage
}

func (s *sink) SetUsage(u *v1alpha1.NodeUsage) {
	s.mu.Lock()
	s.got = append(s.got, u)
	s.mu.Unlock()
}

func (s *sink) n() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// status.usage is written at start, then only when it changed, at most
// once per usageEvery however many ADDs come.
func TestReportUsage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var allocated atomic.Int64
		s := &sink{}
		loads := &atomic.Int64{}
		p := usageParts{
			pools: func() []metrics.Pool {
				return []metrics.Pool{{Family: "ipv6", CIDR: "2001:db8::/64", Size: 1<<64 - 1, Allocated: float64(allocated.Load())},
					{Family: "ipv4", CIDR: "10.0.0.0/24", Size: 253, Allocated: float64(allocated.Load())}}
			},
			peers: func(context.Context) ([]metrics.Peer, error) {
				return []metrics.Peer{{Address: "192.0.2.1", Established: true}, {Address: "2001:db8::1"}}, nil
			},
			policy: func() metrics.Policy { return metrics.Policy{LastApply: time.Unix(1700000000, 5e8)} },
			loads:  loads,
		}
		ctx, cancel := context.WithCancel(t.Context())
		go reportUsage(ctx, s, p)
		synctest.Wait()
		if s.n() != 1 {
			t.Fatalf("%d writes at start, want 1", s.n())
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if s.n() != 1 {
			t.Fatalf("%d writes after a quiet minute, want still 1", s.n())
		}
		for range 100 { // a burst of ADDs
			allocated.Add(1)
		}
		time.Sleep(usageEvery)
		synctest.Wait()
		if s.n() != 2 {
			t.Fatalf("%d writes after a burst of 100 ADDs, want 2", s.n())
		}
		u := s.got[1]
		if u.Pools[0].Free != "18446744073709551515" || u.Pools[1].Free != "153" || u.Pools[1].Allocated != 100 ||
			u.BGPConfigured != 2 || u.BGPEstablished != 1 || u.PolicyAppliedTime == nil || u.PolicyAppliedTime.Unix() != 1700000000 {
			t.Errorf("usage = %+v", u)
		}
		cancel()
	})
}
