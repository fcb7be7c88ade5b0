package routing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/lbannounce"
	"github.com/fritzlab/flock/pkg/model"
)

// Nodes tells the controller its node's configuration; agent.Source is one.
type Nodes interface {
	// Node returns the node, an error wrapping model.ErrNoNodeConfig while
	// there is none, or why the NodeConfig was rejected.
	Node(ctx context.Context) (*model.Node, error)
}

// Addresses lists the node's interface addresses that BGP sessions may
// use (Interfaces reads them with netlink).
type Addresses interface {
	Addresses() ([]netip.Prefix, error)
}

// Secrets reads one key of a Secret in the agent's namespace.
type Secrets interface {
	Value(ctx context.Context, name, key string) (string, error)
}

// Reporter receives the BGPConfigured condition each time it changes.
type Reporter interface {
	ReportBGP(Condition)
}

// Condition is the NodeConfig's BGPConfigured condition (reasons in
// api/v1alpha1).
type Condition struct {
	OK      bool
	Reason  string
	Message string
	// Generation is the NodeConfig generation the condition is about; 0
	// when the NodeConfig could not be read (the reporter knows it then).
	Generation int64
}

// DefaultResync is how often the controller re-renders without a change
// poke: the node's addresses and the Secrets are not watched.
const DefaultResync = 15 * time.Second

// Options are what a Controller works with.
type Options struct {
	Nodes     Nodes
	Addresses Addresses
	// Gateways is nil where the node's routes cannot be read: a peer
	// written as a default gateway is then reported AddressesUnavailable.
	Gateways Gateways
	// Secrets is nil where there are none (file mode): a peer with a
	// passwordSecretRef is then reported PasswordUnavailable.
	Secrets Secrets
	// Reloader applies the rendered config. New takes over its OnStatus
	// and Log, and Run runs it.
	Reloader *bird.Reloader
	// Reporter is nil where there is no NodeConfig status (file mode): the
	// condition is only logged.
	Reporter Reporter
	Log      *slog.Logger
	// Resync is DefaultResync when 0.
	Resync time.Duration
	// AwaitAnycast says that an anycast reconciler will call SetAnycast:
	// until its first call the controller renders nothing and BIRD keeps
	// announcing what it does. Otherwise a restarted agent would withdraw
	// the node's anycast addresses between its caches' sync and the
	// reconciler's first run.
	AwaitAnycast bool
	// AwaitServices says that a Service announcer (lbannounce.Reconciler)
	// will call SetServices: until its first call the controller renders
	// nothing, for the same reason as AwaitAnycast.
	AwaitServices bool
	// ServicesReloaded, when set, is told for every change of the Service
	// set that had a cause (SetServices) how long from the cause until
	// BIRD ran a config with it: the latency flock_lb_announce_latency_seconds
	// shows.
	ServicesReloaded func(time.Duration)
	// Draining returns the prefixes of old pools that still hold pods of n
	// (see agent.Agent.Draining): BIRD keeps announcing them as it does the
	// pools. Nil: none.
	Draining func(n *model.Node) []netip.Prefix
	// Loop, when set, is told of every pass: its error is the Reloader's
	// (BIRD has not taken the config), nil when BIRD is in step.
	Loop interface{ Pass(err error) }
}

// Controller keeps BIRD's config in step with the node. It is level
// triggered: every wake-up (a poke, a tick, a new anycast set) renders the
// whole config from scratch and hands it to the Reloader, which skips a
// config BIRD already runs and coalesces bursts.
type Controller struct {
	o        Options
	log      *slog.Logger
	poke     chan struct{} // a change of the node or the anycast set
	reloaded chan struct{} // the Reloader has news

	mu          sync.Mutex
	anycast     []netip.Addr
	anycastSet  bool // SetAnycast was called
	services    []lbannounce.Route
	servicesSet bool // SetServices was called
	// causeSet is the earliest cause of a Service change not yet in a
	// config handed to the Reloader, causeApplied that of one handed over
	// and not yet run by BIRD (zero: none).
	causeSet, causeApplied time.Time
	reloads                int // the Reloader's count at its last status

	// Used by the Run goroutine only.
	secrets  map[model.SecretRef]string // passwords read at the last resync
	applied  bool                       // a config was given to the Reloader
	outcome  outcome
	reported *Condition
}

// outcome is what a reconcile decided.
type outcome struct {
	// cond is nil while there is no NodeConfig to report on.
	cond *Condition
	// final: cond holds as it is (an error; BIRD keeps its config). Else
	// cond holds once BIRD runs the config, and a BIRD failure replaces it.
	final bool
}

// New builds a controller; nothing runs until Run.
func New(o Options) *Controller {
	if o.Resync == 0 {
		o.Resync = DefaultResync
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	c := &Controller{o: o, log: o.Log, poke: make(chan struct{}, 1), reloaded: make(chan struct{}, 1)}
	o.Reloader.Log = o.Log
	o.Reloader.OnStatus = c.onStatus
	return c
}

// Trigger asks for a re-render soon (the NodeConfig changed). It does not
// wait.
func (c *Controller) Trigger() { poke(c.poke) }

// SetAnycast sets the anycast addresses BGP announces: those of Ready
// pods on this node. Order and duplicates do not matter; an unchanged set
// does not wake the controller.
func (c *Controller) SetAnycast(addrs []netip.Addr) {
	s := sortedAddrs(addrs)
	c.mu.Lock()
	changed := !slices.Equal(s, c.anycast) || !c.anycastSet
	c.anycast, c.anycastSet = s, true
	c.mu.Unlock()
	if changed {
		c.Trigger()
	}
}

// SetServices sets the LoadBalancer Service addresses BGP announces, with
// their communities (lbannounce.Decide's routes, sorted by address); cause
// is when the event behind the change came (zero: none), for
// Options.ServicesReloaded. An unchanged set does not wake the controller.
func (c *Controller) SetServices(routes []lbannounce.Route, cause time.Time) {
	s := slices.Clone(routes)
	slices.SortFunc(s, func(a, b lbannounce.Route) int { return a.Addr.Compare(b.Addr) })
	c.mu.Lock()
	changed := !slices.EqualFunc(s, c.services, lbannounce.Route.Equal) || !c.servicesSet
	c.services, c.servicesSet = s, true
	if changed && !cause.IsZero() && c.causeSet.IsZero() {
		c.causeSet = cause
	}
	c.mu.Unlock()
	if changed {
		c.Trigger()
	}
}

// Run renders and reloads until ctx ends; it runs the Reloader too.
func (c *Controller) Run(ctx context.Context) {
	go c.o.Reloader.Run(ctx)
	t := time.NewTicker(c.o.Resync)
	defer t.Stop()
	resync := true // re-read the Secrets: at start and on every tick
	for {
		c.reconcile(ctx, resync)
		c.report()
		if c.o.Loop != nil {
			c.o.Loop.Pass(c.o.Reloader.Status().Err)
		}
		resync = false
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.poke:
				break wait
			case <-t.C:
				resync = true
				break wait
			case <-c.reloaded:
				c.report()
			}
		}
	}
}

// onStatus runs on the Reloader's goroutine after every attempt.
func (c *Controller) onStatus(st bird.Status) {
	c.mu.Lock()
	more := st.Reloads > c.reloads
	c.reloads = st.Reloads
	var cause time.Time
	if more && st.InSync && !c.causeApplied.IsZero() {
		cause, c.causeApplied = c.causeApplied, time.Time{}
	}
	c.mu.Unlock()
	if !cause.IsZero() && c.o.ServicesReloaded != nil {
		c.o.ServicesReloaded(time.Since(cause))
	}
	if more {
		// The lab's tests count reloads from this line.
		c.log.Info("bird reloaded", "reloads", st.Reloads, "path", c.o.Reloader.Path)
	}
	poke(c.reloaded)
}

// reconcile renders the config the node should have and hands it to the
// Reloader, or keeps what BIRD runs when the config cannot be made.
func (c *Controller) reconcile(ctx context.Context, resync bool) {
	if s, ok := c.o.Nodes.(interface{ HasSynced() bool }); ok && !s.HasSynced() {
		// No answer yet is not "no NodeConfig": the bootstrap config would
		// end the sessions of a node that has one.
		c.keep(nil)
		return
	}
	c.mu.Lock()
	anycast, anycastSet := c.anycast, c.anycastSet
	// The cause stays set until a config with the services goes to the
	// Reloader (timeServices), so a render that fails first and succeeds
	// later is timed from the event, not lost.
	services, servicesSet, cause := c.services, c.servicesSet, c.causeSet
	c.mu.Unlock()
	if c.o.AwaitAnycast && !anycastSet || c.o.AwaitServices && !servicesSet {
		c.keep(nil) // SetAnycast and SetServices poke
		return
	}
	n, err := c.o.Nodes.Node(ctx)
	switch {
	case errors.Is(err, model.ErrNoNodeConfig):
		c.dropCause(cause) // the bootstrap config announces no Service
		c.apply(bird.RenderBootstrap(), nil)
		return
	case err != nil:
		// The agent keeps using the last valid NodeConfig, and so does BIRD.
		// A fresh agent has none: BIRD keeps the file it runs, or, on a
		// first boot, gets the bootstrap config to start with.
		c.keep(&Condition{Reason: v1alpha1.ReasonInvalid, Message: err.Error()})
		return
	case n.BGP == nil:
		c.dropCause(cause)
		c.apply(bird.RenderBootstrap(), &Condition{Reason: v1alpha1.ReasonNoBGP, Generation: n.Generation,
			Message: "spec.bgp is not set: bird runs the bootstrap config, without BGP sessions"})
		return
	}
	fail := func(reason string, err error) {
		c.keep(&Condition{Reason: reason, Message: err.Error(), Generation: n.Generation})
	}
	addrs, err := c.o.Addresses.Addresses()
	if err != nil {
		fail(v1alpha1.ReasonAddressesUnavailable, fmt.Errorf("read the node's interface addresses: %w", err))
		return
	}
	if needsGateways(n) {
		var gws []netip.Addr
		if c.o.Gateways == nil {
			fail(v1alpha1.ReasonAddressesUnavailable, errors.New("a peer is the node's default gateway, and the agent reads no routes in this mode"))
			return
		}
		if gws, err = c.o.Gateways.DefaultGateways(); err != nil {
			fail(v1alpha1.ReasonAddressesUnavailable, fmt.Errorf("read the node's default gateways: %w", err))
			return
		}
		if n, err = ResolvePeers(n, gws); err != nil {
			fail(v1alpha1.ReasonAddressesUnavailable, err)
			return
		}
	}
	passwords, err := c.passwords(ctx, n, resync)
	if err != nil {
		fail(v1alpha1.ReasonPasswordUnavailable, err)
		return
	}
	var draining []netip.Prefix
	if c.o.Draining != nil {
		draining = c.o.Draining(n)
	}
	conf, err := Render(n, addrs, anycast, draining, services, passwords)
	if err != nil {
		fail(v1alpha1.ReasonInvalid, err)
		return
	}

	c.apply(conf, &Condition{OK: true, Reason: v1alpha1.ReasonConfigured, Generation: n.Generation,
		Message: fmt.Sprintf("bird runs the config (BGP peers: %d)", len(n.BGP.Peers))})
	c.timeServices(cause)
}

// timeServices starts timing a Service change (cause) whose config went to
// the Reloader: onStatus observes it once BIRD runs the config, or now when
// BIRD already does (the set changed back within a coalescing window).
func (c *Controller) timeServices(cause time.Time) {
	if cause.IsZero() {
		return
	}
	c.dropCause(cause)
	if c.o.ServicesReloaded == nil {
		return
	}
	inSync := c.o.Reloader.Status().InSync
	c.mu.Lock()
	switch {
	case inSync:
		c.mu.Unlock()
		c.o.ServicesReloaded(time.Since(cause))
		return
	case c.causeApplied.IsZero():
		c.causeApplied = cause
	}
	c.mu.Unlock()
}

// dropCause forgets cause, the pending Service change's, unless a later
// reconcile has taken it already.
func (c *Controller) dropCause(cause time.Time) {
	c.mu.Lock()
	if c.causeSet.Equal(cause) {
		c.causeSet = time.Time{}
	}
	c.mu.Unlock()
}

func (c *Controller) apply(conf []byte, cond *Condition) {
	c.o.Reloader.Apply(conf)
	c.applied = true
	c.outcome = outcome{cond: cond}
}

// keep leaves BIRD on the config it runs and reports why (cond may be
// nil). Only a BIRD that has no config file yet (a first boot: the sidecar
// waits for it) gets the bootstrap one.
func (c *Controller) keep(cond *Condition) {
	if !c.applied && !fileExists(c.o.Reloader.Path) {
		c.o.Reloader.Apply(bird.RenderBootstrap())
		c.applied = true
	}
	c.outcome = outcome{cond: cond, final: true}
}

// passwords returns the value of every Secret key n's peers name. Values
// are read again on a resync and when a new key is named; in between, a
// burst of NodeConfig updates costs no API calls.
func (c *Controller) passwords(ctx context.Context, n *model.Node, resync bool) (map[model.SecretRef]string, error) {
	refs := passwordRefs(n)
	if len(refs) == 0 {
		return nil, nil
	}
	next := map[model.SecretRef]string{}
	for _, ref := range refs {
		if v, ok := c.secrets[ref]; ok && !resync {
			next[ref] = v
			continue
		}
		if c.o.Secrets == nil {
			return nil, fmt.Errorf("secret %s: the agent reads no Secrets in this mode", ref)
		}
		v, err := c.o.Secrets.Value(ctx, ref.Name, ref.Key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", peerField(n, ref), err)
		}
		next[ref] = v
	}
	c.secrets = next
	return next, nil
}

// peerField names the first peer that refers to ref, for errors.
func peerField(n *model.Node, ref model.SecretRef) string {
	for i, p := range n.BGP.Peers {
		if p.Password != nil && *p.Password == ref {
			return fmt.Sprintf("nodeconfig %s: spec.bgp.peers[%d].passwordSecretRef %s", n.Name, i, ref)
		}
	}
	return "secret " + ref.String()
}

// report tells the Reporter (and the log) the condition, when it changed.
// A condition that holds once BIRD runs the config waits for the Reloader:
// in sync, it holds; failing, the failure is reported instead.
func (c *Controller) report() {
	if c.outcome.cond == nil {
		return
	}
	cond := *c.outcome.cond
	if !c.outcome.final {
		st := c.o.Reloader.Status()
		switch {
		case st.Err != nil:
			cond = Condition{Reason: v1alpha1.ReasonReloadFailed, Generation: cond.Generation,
				Message: fmt.Sprintf("bird has not taken the config (retrying): %v", st.Err)}
		case !st.InSync:
			return // not yet reloaded: the Reloader calls back
		}
	}
	if c.reported != nil && *c.reported == cond {
		return
	}
	c.reported = &cond
	switch {
	case cond.OK:
		c.log.Info("bgp configured", "generation", cond.Generation, "message", cond.Message)
	case cond.Reason == v1alpha1.ReasonNoBGP:
		c.log.Info("bgp not configured", "generation", cond.Generation, "reason", cond.Reason)
	default:
		c.log.Error("bgp not configured", "generation", cond.Generation, "reason", cond.Reason, "err", cond.Message)
	}
	if c.o.Reporter != nil {
		c.o.Reporter.ReportBGP(cond)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// poke leaves one pending wake-up in a one-slot channel.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
