package agent

import (
	"context"
	"testing"
	"time"

	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/store"
)

func key(id string) store.Key { return store.Key{ContainerID: id, IfName: "eth0"} }

func TestLeaked(t *testing.T) {
	grace := 2 * time.Minute
	tests := []struct {
		name string
		f    LeakFacts
		want bool
	}{
		{"old, netns gone, pod gone", LeakFacts{Age: 3 * time.Minute, NetnsGone: true, Pod: PodGone}, true},
		{"exactly the grace", LeakFacts{Age: grace, NetnsGone: true, Pod: PodGone}, true},
		{"young: a pod being created", LeakFacts{Age: time.Minute, NetnsGone: true, Pod: PodGone}, false},
		{"netns still there: the runtime will DEL", LeakFacts{Age: time.Hour, Pod: PodGone}, false},
		{"pod still in the API", LeakFacts{Age: time.Hour, NetnsGone: true, Pod: PodPresent}, false},
		{"API could not be asked", LeakFacts{Age: time.Hour, NetnsGone: true, Pod: PodUnknown}, false},
	}
	for _, tt := range tests {
		if got := Leaked(tt.f, grace); got != tt.want {
			t.Errorf("%s: Leaked(%+v) = %v, want %v", tt.name, tt.f, got, tt.want)
		}
	}
}

// TestSweep: only the allocation whose pod and netns are both gone, and
// which is past the grace period, is released (veth, file, addresses);
// nothing at all before the source has synced.
func TestSweep(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"leak", "young", "alive", "running"} {
		e.add(id)
	}
	e.src.gone = map[string]bool{"default/leak": true, "default/young": true, "default/running": true}
	e.dp.goneNetns = map[string]bool{"/run/netns/leak": true, "/run/netns/young": true, "/run/netns/alive": true}
	now := time.Now().Add(3 * time.Minute)
	rec, _ := e.store.Get(key("young"))
	rec.Created = now.Add(-time.Minute)
	if err := e.store.Save(rec); err != nil {
		t.Fatal(err)
	}

	e.src.unsynced = true
	if n := e.a.Sweep(context.Background(), now, DefaultSweepGrace); n != 0 || len(e.store.List()) != 4 {
		t.Fatalf("sweep before sync released %d, %d allocations left", n, len(e.store.List()))
	}
	e.src.unsynced = false
	if n := e.a.Sweep(context.Background(), now, DefaultSweepGrace); n != 1 {
		t.Errorf("sweep released %d, want 1", n)
	}
	if _, ok := e.store.Get(key("leak")); ok {
		t.Error("the leak is still allocated")
	}
	if _, ok := e.dp.up[datapath.HostIfaceName("leak")]; ok {
		t.Error("the leak's veth is still there")
	}
	for _, id := range []string{"young", "alive", "running"} {
		if _, ok := e.store.Get(key(id)); !ok {
			t.Errorf("%s was released", id)
		}
	}
	if got := e.a.LeaksReleased(); got != 1 {
		t.Errorf("LeaksReleased = %d, want 1", got)
	}
}
