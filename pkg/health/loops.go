// Package health says whether the agent is alive and whether it is ready:
// the control loops' heartbeats (liveness, /healthz) and one readiness
// function made of named checks (/readyz, CNI STATUS and the Node's
// NetworkUnavailable condition all ask the same one).
package health

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Loops tracks the agent's control loops: when each last ran a pass, when a
// pass last succeeded and how many failed. A loop that fails goes on
// running (it is not stuck); one that stops running is.
type Loops struct {
	// Now is time.Now unless a test sets it.
	Now func() time.Time

	mu    sync.Mutex
	loops map[string]*Loop
}

// Loop is one control loop's record; Pass is safe for concurrent use.
type Loop struct {
	l     *Loops
	name  string
	every time.Duration

	lastRun, lastOK, started time.Time
	errors                   uint64
}

// LoopState is a loop's record at one moment.
type LoopState struct {
	Name string
	// Every is how often the loop runs at least (its resync tick).
	Every           time.Duration
	LastRun, LastOK time.Time
	// Started is when the loop was registered.
	Started time.Time
	Errors  uint64
}

// NewLoops returns an empty set of loops.
func NewLoops() *Loops { return &Loops{Now: time.Now, loops: map[string]*Loop{}} }

// Register adds a loop that runs a pass at least every `every`. A nil
// Loops returns a nil Loop, whose Pass does nothing.
func (l *Loops) Register(name string, every time.Duration) *Loop {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lp := &Loop{l: l, name: name, every: every, started: l.Now()}
	l.loops[name] = lp
	return lp
}

// Pass records one pass of the loop and its outcome.
func (lp *Loop) Pass(err error) {
	if lp == nil {
		return
	}
	lp.l.mu.Lock()
	defer lp.l.mu.Unlock()
	now := lp.l.Now()
	lp.lastRun = now
	if err != nil {
		lp.errors++
	} else {
		lp.lastOK = now
	}
}

// States returns every loop's record, sorted by name.
func (l *Loops) States() []LoopState {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]LoopState, 0, len(l.loops))
	for _, lp := range l.loops {
		out = append(out, LoopState{Name: lp.name, Every: lp.every, LastRun: lp.lastRun, LastOK: lp.lastOK, Started: lp.started, Errors: lp.errors})
	}
	slices.SortFunc(out, func(a, b LoopState) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// StuckAfter is how long a loop may go without a pass before it counts as
// stuck: three of its periods and a minute of slack (a slow apply, a
// loaded machine), so that only a loop that really stopped fails /healthz.
func StuckAfter(every time.Duration) time.Duration { return 3*every + time.Minute }

// Live says whether every loop that has started ran a pass recently
// enough; the error names each stuck loop.
func (l *Loops) Live() error {
	now := l.Now()
	var errs []error
	for _, s := range l.States() {
		// A loop that has not run yet waits for something readiness
		// reports (the policy loop for its caches, while the API server
		// is away): restarting the agent would not help.
		if s.LastRun.IsZero() {
			continue
		}
		if d := now.Sub(s.LastRun); d > StuckAfter(s.Every) {
			errs = append(errs, fmt.Errorf("loop %s: no pass for %s (runs every %s)", s.Name, d.Round(time.Second), s.Every))
		}
	}
	return errors.Join(errs...)
}
