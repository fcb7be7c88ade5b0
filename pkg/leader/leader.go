// Package leader runs a function only while this process holds a
// coordination.k8s.io Lease: one leader per cluster among a Deployment's
// replicas (flock-controller's NodePool allocator; any later controller
// that must not run twice). It wraps client-go's tools/leaderelection.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Defaults of Config, those of kube-controller-manager.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Config names the Lease and this candidate.
type Config struct {
	Client kubernetes.Interface
	// Namespace and Name are the Lease's.
	Namespace, Name string
	// Identity tells the candidates apart (the pod's name); it is the
	// Lease's holderIdentity while this one leads.
	Identity string
	// LeaseDuration is how long a lease that is not renewed keeps the
	// others waiting; RenewDeadline how long the leader keeps trying to
	// renew before it gives up leading; RetryPeriod how often candidates
	// try. Zero: the defaults above. The Lease records LeaseDuration in
	// whole seconds, which is what the other candidates go by: give at
	// least a second.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Log                                       *slog.Logger
}

// Run campaigns for the Lease until ctx ends. Each time this candidate
// wins, lead runs with a context that is cancelled as soon as the lease is
// lost (or ctx ends); when lead returns, the lease is released, so a
// successor need not wait out LeaseDuration, and the candidate campaigns
// again. lead must stop writing once its context is done: from then on
// another candidate may lead.
func Run(ctx context.Context, c Config, lead func(context.Context)) error {
	if c.Client == nil || c.Namespace == "" || c.Name == "" || c.Identity == "" {
		return errors.New("leader: client, lease namespace, lease name and identity are required")
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = DefaultRenewDeadline
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = DefaultRetryPeriod
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.LeaseDuration < time.Second || c.RenewDeadline >= c.LeaseDuration {
		return fmt.Errorf("leader: lease duration %s must be at least 1s and longer than the renew deadline %s", c.LeaseDuration, c.RenewDeadline)
	}
	log := c.Log.With("lease", c.Namespace+"/"+c.Name, "identity", c.Identity)
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: c.Namespace, Name: c.Name},
		Client:     c.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.Identity},
	}
	// mu is held while lead runs; term counts the campaigns. client-go
	// starts OnStartedLeading in a goroutine and returns from Run without
	// waiting for it, so a term's lead could otherwise still run (or only
	// start) while the next term leads.
	var mu sync.Mutex
	term := 0
	for ctx.Err() == nil {
		runCtx, stop := context.WithCancel(ctx)
		myTerm := term
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          lock,
			LeaseDuration: c.LeaseDuration,
			RenewDeadline: c.RenewDeadline,
			RetryPeriod:   c.RetryPeriod,
			// Release on a clean stop: the successor starts at once.
			ReleaseOnCancel: true,
			Name:            c.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					mu.Lock()
					defer mu.Unlock()
					if term != myTerm || lctx.Err() != nil {
						return
					}
					// lead returning gives the lease up (Run releases it).
					defer stop()
					log.Info("leading")
					lead(lctx)
				},
				OnStoppedLeading: func() { log.Info("not leading") },
				OnNewLeader: func(id string) {
					if id != c.Identity {
						log.Info("another candidate leads", "leader", id)
					}
				},
			},
		})
		if err != nil {
			stop()
			return fmt.Errorf("leader: %w", err)
		}
		// Run returns when leading ends (the lease lost, or lead returned)
		// or ctx ends; lead's context is cancelled by then.
		le.Run(runCtx)
		stop()
		mu.Lock() // waits for a running lead to return
		term++
		mu.Unlock()
		if ctx.Err() == nil {
			// A lease lost by a slow API server: breathe before the next try.
			select {
			case <-ctx.Done():
			case <-time.After(c.RetryPeriod):
			}
		}
	}
	return ctx.Err()
}
