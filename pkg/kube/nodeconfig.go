package kube

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/kube/apiclient"
	"github.com/fritzlab/flock/pkg/model"
)

// NodeConfigs serves one node's NodeConfig from an informer that watches
// that one object. Every event converts and validates the object once and
// swaps the result in atomically, so Node is a pointer load and an update
// takes effect at once, without a restart.
type NodeConfigs struct {
	node   string
	client dynamic.Interface
	inf    cache.SharedIndexInformer
	log    *slog.Logger
	// pools has every NodeConfig's name, age and pools (newPoolsInformer),
	// for the overlap check; overlap is the message of the overlap the
	// node's NodeConfig was last rejected for, "" for none.
	pools   cache.SharedIndexInformer
	overlap atomic.Value // string
	// events records the Warning Event of a rejection; nil: none.
	events NodeConfigEvents
	// secretsNamespace, when set, is the only namespace the NodeConfig's
	// passwordSecretRefs may name (see SetSecretsNamespace).
	secretsNamespace string

	// cur is nil while the node has no NodeConfig.
	cur atomic.Pointer[nodeState]
	// bgp is the BGPConfigured condition the BGP controller last reported;
	// nil when the agent does not drive BIRD.
	bgp atomic.Pointer[metav1.Condition]
	// draining is the status.drainingPools the agent last reported; nil
	// before the first report.
	draining atomic.Pointer[[]v1alpha1.DrainingPool]
	// usage is the status.usage the agent last reported; nil: none yet.
	usage atomic.Pointer[v1alpha1.NodeUsage]
	// changes pokes the agent; statusPoke pokes the status worker. Both hold
	// one pending poke: a burst of events is one wake-up.
	changes    chan struct{}
	statusPoke chan struct{}
}

// nodeState is the NodeConfig as the agent sees it: a valid node or the
// reason it is not.
type nodeState struct {
	node *model.Node
	err  error
}

// NoConfigError says that a node has no NodeConfig; it wraps
// model.ErrNoNodeConfig and names the node, so the CNI error an ADD gets
// tells the operator which object to create.
type NoConfigError struct {
	Node string
	// Syncing is set while the informer has not listed yet.
	Syncing bool
}

func (e *NoConfigError) Error() string {
	if e.Syncing {
		return "no NodeConfig for node " + e.Node + " yet (still loading it from the API server)"
	}
	return "no NodeConfig for node " + e.Node
}

// Unwrap makes errors.Is(err, model.ErrNoNodeConfig) hold.
func (e *NoConfigError) Unwrap() error { return model.ErrNoNodeConfig }

// NewNodeConfigs builds the informer for node's NodeConfig; nothing runs
// until Run.
func NewNodeConfigs(client dynamic.Interface, node string, log *slog.Logger) *NodeConfigs {
	byName := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", node).String()
	}
	c := &NodeConfigs{
		node:       node,
		client:     client,
		inf:        apiclient.NewDynamicInformer(client, NodeConfigResource, byName, cache.Indexers{}),
		pools:      newPoolsInformer(client),
		log:        log,
		changes:    make(chan struct{}, 1),
		statusPoke: make(chan struct{}, 1),
	}
	// The error is only for an informer that already runs.
	_, _ = c.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.set,
		UpdateFunc: func(_, obj any) { c.set(obj) },
		DeleteFunc: c.remove,
	})
	c.overlap.Store("")
	recheck := func(any) { c.recheck() }
	_, _ = c.pools.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    recheck,
		UpdateFunc: func(_, obj any) { c.recheck() },
		DeleteFunc: recheck,
	})
	return c
}

// SetEvents makes the agent record a Warning Event on its NodeConfig when
// it rejects it for overlapping pools. Call it before Run.
func (c *NodeConfigs) SetEvents(e NodeConfigEvents) { c.events = e }

// SetSecretsNamespace makes the agent reject a NodeConfig whose BGP peers
// name a password Secret in any namespace but ns, the agent's own. Call it
// before Run.
func (c *NodeConfigs) SetSecretsNamespace(ns string) { c.secretsNamespace = ns }

// Run runs the informer and the status worker until ctx ends.
func (c *NodeConfigs) Run(ctx context.Context) {
	go c.inf.RunWithContext(ctx)
	go c.pools.RunWithContext(ctx)
	c.runStatus(ctx)
}

// HasSynced reports whether both informers have listed once: until every
// NodeConfig is known, an overlap could go unseen.
func (c *NodeConfigs) HasSynced() bool { return c.inf.HasSynced() && c.pools.HasSynced() }

// Node returns the node's configuration, an error wrapping
// model.ErrNoNodeConfig while there is none, or the reason the NodeConfig
// was rejected.
func (c *NodeConfigs) Node(context.Context) (*model.Node, error) {
	s := c.cur.Load()
	if s == nil {
		return nil, &NoConfigError{Node: c.node, Syncing: !c.inf.HasSynced()}
	}
	return s.node, s.err
}

// UID returns the UID of the cached NodeConfig, "" while there is none.
func (c *NodeConfigs) UID() string {
	obj, ok, err := c.inf.GetStore().GetByKey(c.node)
	if err != nil || !ok {
		return ""
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return ""
	}
	return string(u.GetUID())
}

// Changes is poked whenever the NodeConfig changes or goes away.
func (c *NodeConfigs) Changes() <-chan struct{} { return c.changes }

func (c *NodeConfigs) set(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || u.GetName() != c.node {
		return
	}
	n, err := c.validate(u)
	c.noteOverlap(u, err)
	c.cur.Store(&nodeState{node: n, err: err})
	poke(c.changes)
	poke(c.statusPoke)
}

func (c *NodeConfigs) remove(obj any) {
	name := ""
	switch o := obj.(type) {
	case *unstructured.Unstructured:
		name = o.GetName()
	case cache.DeletedFinalStateUnknown:
		name = o.Key // cluster-scoped: the key is the name
	}
	if name != c.node {
		return
	}
	c.cur.Store(nil)
	c.overlap.Store("")
	c.log.Warn("nodeconfig deleted", "node", c.node)
	poke(c.changes)
}

// validate is nodeFromObject and the checks that need more than the object:
// the agent's namespace, and the other NodeConfigs' pools.
func (c *NodeConfigs) validate(u *unstructured.Unstructured) (*model.Node, error) {
	n, err := nodeFromObject(u)
	if err != nil {
		return nil, err
	}
	if c.secretsNamespace != "" {
		if err := model.CheckSecretsNamespace(n, c.secretsNamespace); err != nil {
			return nil, err
		}
	}
	if err := model.CheckOverlap(poolsOf(u), c.otherPools()); err != nil {
		return nil, err
	}
	return n, nil
}

// nodeFromObject decodes and validates a NodeConfig. The schema has
// already checked it, but the agent checks again before using anything.
func nodeFromObject(u *unstructured.Unstructured) (*model.Node, error) {
	var nc v1alpha1.NodeConfig
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), &nc); err != nil {
		return nil, fmt.Errorf("decode nodeconfig %s: %w", u.GetName(), err)
	}
	return model.NodeFromConfig(&nc)
}

// poke leaves one pending wake-up in a one-slot channel.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
