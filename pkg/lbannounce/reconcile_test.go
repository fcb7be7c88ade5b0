package lbannounce

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type fakeSource struct {
	mu     sync.Mutex
	synced bool
	svcs   []Service
	eps    map[string]Endpoints
}

func (f *fakeSource) HasSynced() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.synced }

func (f *fakeSource) Snapshot() ([]Service, map[string]Endpoints, []Pool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.svcs, f.eps, pools()
}

func (f *fakeSource) set(local int) {
	f.mu.Lock()
	f.synced = true
	f.svcs = []Service{svc("a", true, "2001:db8:5::10")}
	f.eps = map[string]Endpoints{"demo/a": {IPv6: Counts{Local: local, Ready: local}}}
	f.mu.Unlock()
}

type fakeAnnouncer struct {
	mu     sync.Mutex
	sets   [][]Route
	causes []time.Time
}

func (f *fakeAnnouncer) SetServices(r []Route, cause time.Time) {
	f.mu.Lock()
	f.sets, f.causes = append(f.sets, r), append(f.causes, cause)
	f.mu.Unlock()
}

func (f *fakeAnnouncer) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.sets) }

// The reconciler hands nothing over before its source synced, then every
// changed set once, with the time of the event that caused it.
func TestReconciler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src, ann := &fakeSource{}, &fakeAnnouncer{}
		r := NewReconciler(Options{Source: src, Announcer: ann, Log: slog.New(slog.DiscardHandler)})
		changes := make(chan struct{}, 1)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx, time.Minute, changes)
		synctest.Wait()
		if ann.count() != 0 {
			t.Fatalf("unsynced: handed %d sets, want none", ann.count())
		}
		src.set(0)
		r.Poke()
		synctest.Wait()
		if ann.count() != 1 || len(ann.sets[0]) != 0 {
			t.Fatalf("synced without endpoints: sets %v, want one empty set", ann.sets)
		}
		src.set(1)
		sent := time.Now()
		changes <- struct{}{}
		synctest.Wait()
		if ann.count() != 2 || len(ann.sets[1]) != 1 || ann.sets[1][0].Addr != addr("2001:db8:5::10") {
			t.Fatalf("a local endpoint Ready: sets %v, want the address announced", ann.sets)
		}
		if !ann.causes[0].IsZero() || !ann.causes[1].Equal(sent) {
			t.Errorf("causes %v, want none for the first set and %v for the change", ann.causes, sent)
		}
		changes <- struct{}{} // nothing changed
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if ann.count() != 2 {
			t.Errorf("an unchanged set was handed over again: %v", ann.sets)
		}
		if ds := r.Decisions(); len(ds) != 1 || !ds[0].Announce {
			t.Errorf("Decisions = %+v", ds)
		}
		if a := r.Announced(); len(a) != 1 {
			t.Errorf("Announced = %+v", a)
		}
		cancel()
		synctest.Wait()
	})
}

// A Source that never syncs while the agent's other caches have (no RBAC
// for Services) gets an empty set handed over once, SyncWait after them,
// so that BGP still runs; while the others have not synced either (the
// API server is down), nothing is handed over.
func TestReconcilerSyncWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src, ann := &fakeSource{}, &fakeAnnouncer{}
		var mu sync.Mutex
		others := false
		r := NewReconciler(Options{Source: src, Announcer: ann, Log: slog.New(slog.DiscardHandler), SyncWait: 30 * time.Second,
			OthersSynced: func() bool { mu.Lock(); defer mu.Unlock(); return others }})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go r.Run(ctx, 5*time.Second, nil)
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if ann.count() != 0 {
			t.Fatalf("nothing synced: %d sets handed over", ann.count())
		}
		mu.Lock()
		others = true
		mu.Unlock()
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if ann.count() != 0 {
			t.Fatalf("before SyncWait: %d sets handed over", ann.count())
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if ann.count() != 1 || len(ann.sets[0]) != 0 {
			t.Fatalf("after SyncWait: sets %v, want one empty set", ann.sets)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if ann.count() != 1 {
			t.Errorf("the empty set was handed over again: %v", ann.sets)
		}
		src.set(1)
		r.Poke()
		synctest.Wait()
		if ann.count() != 2 || len(ann.sets[1]) != 1 {
			t.Errorf("after the sync: sets %v, want the address announced", ann.sets)
		}
		cancel()
		synctest.Wait()
	})
}
