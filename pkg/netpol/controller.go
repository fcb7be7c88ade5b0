// Package netpol keeps a node's NetworkPolicy rules in the kernel equal to
// what the cluster says: it joins the informer caches of the whole cluster
// (policies, namespaces, pods) with the pods the agent attached on this
// node (their host veths and addresses), translates, and applies.
//
// It is level-triggered: informer events, CNI ADD and DEL, and a 30 s tick
// only poke a one-slot channel; one worker translates everything from
// scratch and the Applier skips models equal to the one in the kernel. A
// pod being added is the exception that cannot wait for the worker: the
// agent calls PodAdded before the pod's veth and routes exist, and PodAdded
// returns only once the pod's own rules are in the kernel, so a pod
// selected by a default-deny policy is never reachable unfiltered.
//
// # Before the caches have synced
//
// Nothing is applied: a restarted agent leaves the table its predecessor
// loaded in force (stale, but never wide open) until it knows every policy,
// and PodAdded fails the ADD (failing closed; the runtime retries), since
// a pod whose policies are unknown cannot be given its rules.
package netpol

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/store"
)

// Cluster is what the controller reads of the cluster: informer caches of
// NetworkPolicies, namespaces and pods (kube.Cluster).
type Cluster interface {
	// HasSynced reports whether every cache has listed once.
	HasSynced() bool
	// Changes is poked when a policy, a namespace or a pod of this node
	// changes: the controller syncs at once.
	Changes() <-chan struct{}
	// PeerChanges is poked when a pod elsewhere that a rule of this node
	// may reference changes: the controller syncs at most once per
	// MinPeerInterval for those.
	PeerChanges() <-chan struct{}
	// Input is what a translation for the node's pods local needs: every
	// namespace, and the policies and pods the rules of local can depend
	// on (it may leave out the rest of the cluster), pods without
	// interfaces. local are the pods to be translated as this node's,
	// with the labels to use when the cache lacks them.
	Input(local []policy.Pod) *policy.Input
	// Pod returns one pod, from the cache or the API server (uid, when
	// set, is the incarnation wanted).
	Pod(ctx context.Context, namespace, name, uid string) (*policy.Pod, error)
}

// Locals are the pods attached on this node: the agent's allocations
// (store.Store), which alone know each pod's host veth.
type Locals interface {
	List() []store.Record
}

// Ruleset is the kernel side (policy.Applier).
type Ruleset interface {
	Apply(ctx context.Context, m *policy.Model) (changed bool, err error)
	Add(ctx context.Context, m *policy.Model) (ok bool, err error)
	Resync(ctx context.Context) (repaired bool, err error)
}

// Defaults of the Options.
const (
	DefaultResync   = 30 * time.Second
	DefaultRetry    = time.Second
	DefaultMaxRetry = 30 * time.Second
	// DefaultMinPeerInterval batches the churn of peer pods elsewhere in
	// the cluster: a pod created on another node is allowed by this node's
	// rules at most this long after the API has it (Calico's Felix and
	// Cilium's identity propagation batch the same way), and a burst of
	// 100 pods a second costs one nft transaction a second.
	DefaultMinPeerInterval = time.Second
)

// ErrNotSynced is returned while the caches have not listed yet.
var ErrNotSynced = errors.New("NetworkPolicy caches not synced yet")

// Controller enforces NetworkPolicy for the pods of one node. It implements
// agent.Policy.
type Controller struct {
	node    string
	cluster Cluster
	locals  Locals
	rules   Ruleset
	log     *slog.Logger

	// Resync is how often the kernel's table is checked for drift (and
	// everything translated again); Retry the first delay after a failed
	// sync, doubled up to MaxRetry. Set them before Run.
	Resync, Retry, MaxRetry time.Duration
	// MinPeerInterval is the least time between the start of a sync and
	// one for a peer change elsewhere (Cluster.PeerChanges).
	MinPeerInterval time.Duration

	poke chan struct{}
	// mu serialises writes to the kernel: full syncs and pod adds.
	mu sync.Mutex
	// adds counts successful PodAdded calls, so that a full sync translated
	// without mu knows whether a pod was added meanwhile.
	adds atomic.Uint64

	// known are the pods PodAdded learnt of, by namespace/name, for as long
	// as the informer cache may lack them (or hold an earlier pod of the
	// same name).
	knownMu sync.Mutex
	known   map[string]policy.Pod

	// appliedMu guards what Applied reports.
	appliedMu sync.Mutex
	applied   Applied
}

// Applied is what the controller last did, for operators (the admin API).
type Applied struct {
	// Model is the ruleset last applied in full, with the pods PodAdded
	// added to it since; nil before the first apply.
	Model *policy.Model
	// LastApply is when a full apply last succeeded (or found the kernel's
	// table up to date); LastChange when the table was last written.
	LastApply, LastChange time.Time
	// LastError is the error of the last full apply when it failed, at
	// LastErrorTime; nil once one succeeds.
	LastError     error
	LastErrorTime time.Time
}

// Applied returns what the controller last did; the model is shared,
// read-only. Synced says whether the caches have listed once.
func (c *Controller) Applied() (a Applied, synced bool) {
	c.appliedMu.Lock()
	defer c.appliedMu.Unlock()
	return c.applied, c.cluster.HasSynced()
}

// New builds a controller for node; nothing runs until Run.
func New(node string, cluster Cluster, locals Locals, rules Ruleset, log *slog.Logger) *Controller {
	return &Controller{
		node: node, cluster: cluster, locals: locals, rules: rules, log: log,
		Resync: DefaultResync, Retry: DefaultRetry, MaxRetry: DefaultMaxRetry,
		MinPeerInterval: DefaultMinPeerInterval,
		poke:            make(chan struct{}, 1),
		known:           map[string]policy.Pod{},
	}
}

// Poke asks the worker for a full sync.
func (c *Controller) Poke() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// Run is the worker: it waits for the caches, then syncs on every poke and
// every Resync tick, and after a failure again with backoff, until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	wait := time.NewTicker(100 * time.Millisecond)
	for !c.cluster.HasSynced() {
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-wait.C:
		}
	}
	wait.Stop()
	// The first sync covers whatever poked before it.
	for _, ch := range []<-chan struct{}{c.poke, c.cluster.Changes(), c.cluster.PeerChanges()} {
		select {
		case <-ch:
		default:
		}
	}
	tick := time.NewTicker(c.Resync)
	defer tick.Stop()
	var retry *time.Timer
	var retryC <-chan time.Time
	backoff := c.Retry
	resync := false
	// A peer change within MinPeerInterval of the last sync's start waits
	// on batch for the rest of the interval.
	var batch *time.Timer
	var batchC <-chan time.Time
	for {
		last := time.Now()
		if batch != nil {
			batch.Stop()
			batch, batchC = nil, nil
		}
		err := c.Sync(ctx)
		if err == nil && resync {
			if repaired, rerr := c.rules.Resync(ctx); rerr != nil {
				err = rerr
			} else if repaired {
				c.log.Warn("networkpolicy table drifted; reloaded it")
			}
		}
		resync = false
		if err != nil && ctx.Err() == nil {
			c.log.Error("networkpolicy sync failed", "retry_in", backoff, "err", err)
			retry = time.NewTimer(backoff)
			retryC = retry.C
			backoff = min(2*backoff, c.MaxRetry)
		} else if err == nil {
			backoff = c.Retry
		}
	wait:
		select {
		case <-ctx.Done():
			if retry != nil {
				retry.Stop()
			}
			if batch != nil {
				batch.Stop()
			}
			return
		case <-c.poke:
		case <-c.cluster.Changes():
		case <-c.cluster.PeerChanges():
			if d := c.MinPeerInterval - time.Since(last); d > 0 {
				if batch == nil {
					batch = time.NewTimer(d)
					batchC = batch.C
				}
				goto wait
			}
		case <-batchC:
		case <-tick.C:
			resync = true
		case <-retryC:
		}
		if retry != nil {
			retry.Stop()
			retry, retryC = nil, nil
		}
	}
}

// Sync translates the whole cluster and applies it (the Applier skips an
// unchanged model). Translating happens outside the kernel lock; when a pod
// was added meanwhile, the model may lack it and is translated again under
// the lock.
func (c *Controller) Sync(ctx context.Context) error {
	if !c.cluster.HasSynced() {
		return ErrNotSynced
	}
	start := time.Now()
	gen := c.adds.Load()
	m := policy.Translate(c.input(nil, false))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.adds.Load() != gen {
		m = policy.Translate(c.input(nil, false))
	}
	translated := time.Now()
	err := c.apply(ctx, m)
	// hack/scalebench counts these lines and reads their timings.
	c.log.Debug("networkpolicy sync", "translate_ms", translated.Sub(start).Milliseconds(),
		"apply_ms", time.Since(translated).Milliseconds(), "pods", len(m.Pods), "err", err)
	return err
}

// apply loads a full model; the caller holds mu.
func (c *Controller) apply(ctx context.Context, m *policy.Model) error {
	changed, err := c.rules.Apply(ctx, m)
	now := time.Now()
	c.appliedMu.Lock()
	if err != nil {
		c.applied.LastError, c.applied.LastErrorTime = err, now
	} else {
		c.applied.Model, c.applied.LastApply, c.applied.LastError = m, now, nil
		if changed {
			c.applied.LastChange = now
		}
	}
	c.appliedMu.Unlock()
	if err != nil {
		return fmt.Errorf("apply networkpolicy for node %s: %w", c.node, err)
	}
	if changed {
		c.log.Info("networkpolicy applied", "pods", len(m.Pods), "warnings", len(m.Warnings))
		for _, w := range m.Warnings {
			c.log.Warn("networkpolicy input unusable", "warning", w)
		}
	}
	return nil
}

// PodAdded puts a pod's own rules into the kernel before the agent creates
// its veth: the whole cluster is translated with the new pod the only
// local one, and its map entries (and allow-list chain, when no other pod
// has the same) are added to the loaded table. When that cannot be done
// (no table loaded yet, a repeated ADD) a full sync runs instead. Either
// way the worker is poked, so that the other pods' rules learn the new
// pod's addresses. An error fails the ADD.
func (c *Controller) PodAdded(ctx context.Context, pod *model.Pod, hostIface string, ips []netip.Addr) error {
	if !c.cluster.HasSynced() {
		return fmt.Errorf("networkpolicy for pod %s: %w (failing closed; the runtime retries)", pod.Key(), ErrNotSynced)
	}
	p, err := c.cluster.Pod(ctx, pod.Namespace, pod.Name, pod.UID)
	if err != nil {
		return fmt.Errorf("networkpolicy for pod %s: %w", pod.Key(), err)
	}
	p.UID = pod.UID
	p.Node, p.Iface, p.IPs = c.node, hostIface, ips
	c.remember(*p)

	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.Poke()
	added := policy.Translate(c.input(p, true))
	ok, err := c.rules.Add(ctx, added)
	if err != nil {
		c.log.Warn("networkpolicy fast path failed; applying everything", "pod", pod.Key(), "err", err)
	}
	if ok {
		c.recordAdd(added)
	}
	if !ok {
		if err := c.apply(ctx, policy.Translate(c.input(p, false))); err != nil {
			return fmt.Errorf("networkpolicy for pod %s: %w", pod.Key(), err)
		}
	}
	c.adds.Add(1)
	return nil
}

// PodDeleted asks for a sync without the pod; until it runs, the pod's
// rules stay in the kernel, where they match nothing once its veth is gone.
func (c *Controller) PodDeleted(_ context.Context, _, _ string) { c.Poke() }

// recordAdd adds to Applied's model the pods an Add put into the kernel.
func (c *Controller) recordAdd(added *policy.Model) {
	c.appliedMu.Lock()
	defer c.appliedMu.Unlock()
	m := &policy.Model{}
	if c.applied.Model != nil {
		m.Pods = slices.DeleteFunc(slices.Clone(c.applied.Model.Pods), func(p policy.PodPolicy) bool {
			return slices.ContainsFunc(added.Pods, func(a policy.PodPolicy) bool { return a.Iface == p.Iface })
		})
		m.Warnings = c.applied.Model.Warnings
	}
	m.Pods = append(m.Pods, added.Pods...)
	c.applied.Model, c.applied.LastChange = m, time.Now()
}

func (c *Controller) remember(p policy.Pod) {
	c.knownMu.Lock()
	c.known[p.Key()] = p
	c.knownMu.Unlock()
}

// input joins the cluster with this node's attachments. Pods of this node
// come from the attachments only (the informer's may be stale, or gone
// already), each with the labels and ports of the informer's pod of the
// same UID, else of what PodAdded learnt, else none (a pod deleted from the
// API whose DEL has not come yet: it stays under its namespace's policies).
//
// add, when set, is a pod being added, local with its interface whether
// or not the attachments list it yet; with onlyAdd it is the only local
// pod and every other pod of this node a peer only, so that the model holds
// just add's rules.
func (c *Controller) input(add *policy.Pod, onlyAdd bool) *policy.Input {
	records := c.locals.List()
	c.knownMu.Lock()
	defer c.knownMu.Unlock()
	in := c.cluster.Input(c.localPods(records, add, onlyAdd))
	in.Node = c.node
	byKey := make(map[string]*policy.Pod, len(in.Pods))
	pods := make([]policy.Pod, 0, len(in.Pods)+1)
	for i := range in.Pods {
		p := &in.Pods[i]
		byKey[p.Key()] = p
		if p.Node != c.node {
			pods = append(pods, *p)
		}
	}

	attached := make(map[string]bool, len(records))
	for _, r := range records {
		key := r.Namespace + "/" + r.Name
		attached[key] = true
		if add != nil && r.HostIface == add.Iface {
			continue
		}
		p := policy.Pod{Namespace: r.Namespace, Name: r.Name, UID: r.UID, Node: c.node, Iface: r.HostIface}
		if ip, ok := byKey[key]; ok && (r.UID == "" || ip.UID == r.UID) {
			p.Labels, p.Ports = ip.Labels, ip.Ports
		} else if kp, ok := c.known[key]; ok && (r.UID == "" || kp.UID == r.UID) {
			p.Labels, p.Ports = kp.Labels, kp.Ports
		}
		for _, a := range []netip.Addr{r.IPv6, r.IPv4} {
			if a.IsValid() {
				p.IPs = append(p.IPs, a)
			}
		}
		if onlyAdd {
			p.Iface = ""
		}
		pods = append(pods, p)
	}
	if add != nil {
		pods = append(pods, *add)
		attached[add.Key()] = true
	}
	// What PodAdded learnt is needed only until the attachment is gone.
	for key := range c.known {
		if !attached[key] {
			delete(c.known, key)
		}
	}
	in.Pods = pods
	return in
}

// localPods are the pods a translation takes as this node's, for the
// cluster to pick the policies and peers they need: add alone with
// onlyAdd, else every attachment and add, each with what PodAdded learnt
// of its labels (the cluster uses its cache's when it has the pod). The
// caller holds knownMu.
func (c *Controller) localPods(records []store.Record, add *policy.Pod, onlyAdd bool) []policy.Pod {
	var out []policy.Pod
	if add != nil {
		out = append(out, *add)
	}
	if onlyAdd {
		return out
	}
	for _, r := range records {
		if add != nil && r.HostIface == add.Iface {
			continue
		}
		p := policy.Pod{Namespace: r.Namespace, Name: r.Name, UID: r.UID}
		if kp, ok := c.known[r.Namespace+"/"+r.Name]; ok && (r.UID == "" || kp.UID == r.UID) {
			p.Labels = kp.Labels
		}
		out = append(out, p)
	}
	return out
}
