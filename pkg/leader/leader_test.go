package leader

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
)

// Lease times are whole seconds: the Lease records its duration in
// seconds, and candidates judge it by that record.
//
// Two candidates on one Lease: never both leading; when the leader's lead
// returns, the lease is released and the other leads; when ctx ends, Run
// returns.
func TestRunOneLeaderAtATime(t *testing.T) {
	client := fake.NewSimpleClientset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var leading, maxLeading atomic.Int32
	var mu sync.Mutex
	var order []string
	turns := make(chan string, 8)
	run := func(id string) {
		Run(ctx, Config{Client: client, Namespace: "kube-system", Name: "test", Identity: id,
			LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 100 * time.Millisecond},
			func(lctx context.Context) {
				n := leading.Add(1)
				defer leading.Add(-1)
				for m := maxLeading.Load(); n > m && !maxLeading.CompareAndSwap(m, n); m = maxLeading.Load() {
				}
				mu.Lock()
				order = append(order, id)
				mu.Unlock()
				turns <- id
				// Lead a while, then give up the lease by returning.
				select {
				case <-lctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			})
	}
	var wg sync.WaitGroup
	wg.Go(func() { run("a") })
	wg.Go(func() { run("b") })
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case id := <-turns:
			seen[id] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("only %v led within 30s", seen)
		}
	}
	cancel()
	wg.Wait()
	if m := maxLeading.Load(); m != 1 {
		t.Errorf("%d candidates led at once", m)
	}
	t.Logf("terms: %v", order)
}

func TestRunNeedsIdentity(t *testing.T) {
	if err := Run(context.Background(), Config{Client: fake.NewSimpleClientset(), Namespace: "ns", Name: "l"}, func(context.Context) {}); err == nil {
		t.Error("Run without an identity succeeded")
	}
}

func TestRunRejectsSubSecondLease(t *testing.T) {
	err := Run(context.Background(), Config{Client: fake.NewSimpleClientset(), Namespace: "ns", Name: "l", Identity: "a",
		LeaseDuration: 500 * time.Millisecond, RenewDeadline: 100 * time.Millisecond}, func(context.Context) {})
	if err == nil || !strings.Contains(err.Error(), "lease duration 500ms must be at least 1s") {
		t.Errorf("error %v, want one about the lease duration", err)
	}
}
