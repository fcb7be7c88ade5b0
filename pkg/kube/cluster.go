package kube

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/pkg/kube/apiclient"
	"github.com/fritzlab/flock/pkg/policy"
)

// Cluster serves what NetworkPolicy needs of the whole cluster: every
// NetworkPolicy, namespace and pod, from informers whose transforms keep
// only what the translator reads (policy specs; namespace labels; pod
// labels, addresses, node, host-network flag, phase and named container
// ports). Its handlers only filter out updates that change none of that
// and poke one channel. Once told its node (SetNode), the pod handler also
// skips changes of pods elsewhere that no policy selecting one of the
// node's pods names as a peer (relevance.go).
type Cluster struct {
	client     apiclient.Interface
	policies   cache.SharedIndexInformer
	namespaces cache.SharedIndexInformer
	pods       cache.SharedIndexInformer
	changes    chan struct{}
	// peerChanges is poked for pods elsewhere that a rule of the node's
	// may reference: the controller batches those (netpol.MinPeerInterval).
	peerChanges chan struct{}

	node string
	// relMu guards the policies that select a local pod, rebuilt from the
	// caches when dirty (a policy, a namespace or a local pod changed).
	relMu  sync.Mutex
	dirty  bool
	active []policySelectors
	// compiled are every cached policy's selectors, parsed again only
	// after a policy changed (compiledDirty).
	compiled      []policySelectors
	compiledDirty bool
	// Pod events that poked, and those skipped as irrelevant.
	podPokes, podSkips atomic.Uint64
}

// nodeIndex indexes the pod cache by node name, so the node's own pods are
// found without a scan of the cluster. Once SetNode has named the node,
// only its pods are indexed: an index of every pod would hold a second
// copy of the cache's 30,000 keys for one lookup.
const nodeIndex = "node"

func (c *Cluster) podNode(obj any) ([]string, error) {
	if p, ok := obj.(*PolicyPod); ok && p.Pod.Node != "" && (c.node == "" || p.Pod.Node == c.node) {
		return []string{p.Pod.Node}, nil
	}
	return nil, nil
}

// NewCluster builds the three informers; nothing runs until Run.
func NewCluster(client apiclient.Interface) *Cluster {
	c := &Cluster{
		client:        client,
		policies:      cache.NewSharedIndexInformer(client.ListWatch(apiclient.NetworkPolicies, metav1.NamespaceAll, nil), &networkingv1.NetworkPolicy{}, 0, cache.Indexers{}),
		namespaces:    cache.NewSharedIndexInformer(client.ListWatch(apiclient.Namespaces, "", nil), &corev1.Namespace{}, 0, cache.Indexers{}),
		changes:       make(chan struct{}, 1),
		peerChanges:   make(chan struct{}, 1),
		dirty:         true,
		compiledDirty: true,
	}
	c.pods = cache.NewSharedIndexInformer(client.ListWatch(apiclient.Pods, metav1.NamespaceAll, nil), &corev1.Pod{}, 0, cache.Indexers{nodeIndex: c.podNode})
	// The errors are only for informers that already run.
	_ = c.policies.SetTransform(StripNetworkPolicy)
	_ = c.namespaces.SetTransform(StripNamespace)
	_ = c.pods.SetTransform(StripPolicyPod)
	for inf, h := range map[cache.SharedIndexInformer]struct {
		same    func(a, b any) bool
		changed func()
	}{
		c.policies:   {samePolicy, c.policyChanged},
		c.namespaces: {sameNamespace, c.invalidate},
	} {
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { h.changed() },
			DeleteFunc: func(any) { h.changed() },
			UpdateFunc: func(old, cur any) {
				if !h.same(old, cur) {
					h.changed()
				}
			},
		})
	}
	_, _ = c.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.podChanged(obj, nil) },
		DeleteFunc: func(obj any) { c.podChanged(obj, nil) },
		UpdateFunc: func(old, cur any) {
			if !samePolicyPod(old, cur) {
				c.podChanged(old, cur)
			}
		},
	})
	return c
}

// SetNode tells the cluster which node's ruleset it feeds, before Run;
// without it every pod change pokes.
func (c *Cluster) SetNode(node string) { c.node = node }

// PodEvents counts the pod changes that poked the controller and those
// skipped because no rule of the node's could reference the pod.
func (c *Cluster) PodEvents() (poked, skipped uint64) { return c.podPokes.Load(), c.podSkips.Load() }

// invalidate pokes after a change of a policy, a namespace or a local pod,
// which can change which policies select the node's pods.
func (c *Cluster) invalidate() {
	c.relMu.Lock()
	c.dirty = true
	c.relMu.Unlock()
	poke(c.changes)
}

// policyChanged invalidates, and has every policy's selectors parsed again.
func (c *Cluster) policyChanged() {
	c.relMu.Lock()
	c.compiledDirty = true
	c.relMu.Unlock()
	c.invalidate()
}

// podChanged pokes when the pod, before (old) or after (cur) a change, is
// the node's own or a peer of a policy selecting one of the node's pods.
func (c *Cluster) podChanged(old, cur any) {
	if c.node == "" || c.local(old) || c.local(cur) {
		c.podPokes.Add(1)
		if c.node != "" {
			c.invalidate()
		} else {
			poke(c.changes)
		}
		return
	}
	c.relMu.Lock()
	if c.dirty {
		c.active, c.dirty = c.activePolicies(), false
	}
	active := c.active
	c.relMu.Unlock()
	for _, obj := range []any{old, cur} {
		if obj == nil {
			continue
		}
		v, ok := c.view(obj)
		if !ok || peerOfAny(active, v) {
			c.podPokes.Add(1)
			poke(c.peerChanges)
			return
		}
	}
	c.podSkips.Add(1)
}

func asPod(obj any) (*PolicyPod, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*PolicyPod)
	return p, ok
}

func (c *Cluster) local(obj any) bool {
	if obj == nil {
		return false
	}
	p, ok := asPod(obj)
	return !ok || p.Pod.Node == c.node // an unknown object counts as local: it pokes
}

func (c *Cluster) view(obj any) (podView, bool) {
	p, ok := asPod(obj)
	if !ok {
		return podView{}, false
	}
	return podView{namespace: p.Pod.Namespace, labels: labels.Set(p.Pod.Labels), nsLabels: c.nsLabels(p.Pod.Namespace), named: len(p.Pod.Ports) > 0}, true
}

// nsLabels are a namespace's labels from the cache, with the
// kubernetes.io/metadata.name label that the API server sets (and
// Translate adds when it is missing).
func (c *Cluster) nsLabels(namespace string) labels.Set {
	var l map[string]string
	if o, ok, _ := c.namespaces.GetStore().GetByKey(namespace); ok {
		if ns, ok := o.(*corev1.Namespace); ok {
			l = ns.Labels
		}
	}
	if l[corev1.LabelMetadataName] == namespace {
		return l
	}
	l = maps.Clone(l)
	if l == nil {
		l = map[string]string{}
	}
	l[corev1.LabelMetadataName] = namespace
	return l
}

// compiledPolicies are every cached policy's selectors; the caller holds
// relMu.
func (c *Cluster) compiledPolicies() []policySelectors {
	if c.compiledDirty {
		c.compiled = nil
		for _, o := range c.policies.GetStore().List() {
			if np, ok := o.(*networkingv1.NetworkPolicy); ok {
				c.compiled = append(c.compiled, compileSelectors(np))
			}
		}
		c.compiledDirty = false
	}
	return c.compiled
}

// activePolicies parses every cached policy and keeps those selecting a
// pod of the node; the caller holds relMu.
func (c *Cluster) activePolicies() []policySelectors {
	local := map[string][]labels.Set{}
	objs, _ := c.pods.GetIndexer().ByIndex(nodeIndex, c.node)
	for _, o := range objs {
		if p, ok := o.(*PolicyPod); ok {
			local[p.Pod.Namespace] = append(local[p.Pod.Namespace], labels.Set(p.Pod.Labels))
		}
	}
	return activePolicies(c.compiledPolicies(), local)
}

// Run runs the informers until ctx ends.
func (c *Cluster) Run(ctx context.Context) {
	go c.policies.RunWithContext(ctx)
	go c.namespaces.RunWithContext(ctx)
	c.pods.RunWithContext(ctx)
}

// HasSynced reports whether all three informers have listed once.
func (c *Cluster) HasSynced() bool {
	return c.policies.HasSynced() && c.namespaces.HasSynced() && c.pods.HasSynced()
}

// Changes is poked whenever a NetworkPolicy, a namespace's labels or a pod's
// policy-relevant fields change.
func (c *Cluster) Changes() <-chan struct{} { return c.changes }

// PeerChanges is poked when a pod on another node that a rule of this
// node's may reference changes (with SetNode; without it every pod change
// pokes Changes).
func (c *Cluster) PeerChanges() <-chan struct{} { return c.peerChanges }

// Input returns the cluster as the translator's input for the node's
// pods local (which the caller attached: namespace, name, UID, and the
// labels to use when the cache lacks the pod), without a node: every
// namespace, and the NetworkPolicies and pods NetworkPolicy applies to
// (not host-network pods, not finished ones) that the local pods' rules
// can depend on; pods without interfaces. The caller adds the local pods'
// interfaces.
//
// Once SetNode has named the node, that is only the policies selecting one
// of local (the only ones Translate reads for them), the node's own pods
// and those of local's names (the caller reads their labels), and the
// pods those policies' peers select (relevance.go): a translation of the
// whole cluster then costs what the node's rules reference, not every pod
// and policy of the cluster. Without a node it is every policy and pod.
func (c *Cluster) Input(local []policy.Pod) *policy.Input {
	in := &policy.Input{}
	for _, o := range c.namespaces.GetStore().List() {
		if ns, ok := o.(*corev1.Namespace); ok {
			in.Namespaces = append(in.Namespaces, policy.Namespace{Name: ns.Name, Labels: ns.Labels})
		}
	}
	objs := c.pods.GetStore().List()
	if c.node == "" {
		for _, o := range c.policies.GetStore().List() {
			if np, ok := o.(*networkingv1.NetworkPolicy); ok {
				in.Policies = append(in.Policies, *np)
			}
		}
		in.Pods = make([]policy.Pod, 0, len(objs))
		for _, o := range objs {
			if p, ok := o.(*PolicyPod); ok && p.Applies {
				in.Pods = append(in.Pods, p.Pod)
			}
		}
		return in
	}
	sets := map[string][]labels.Set{}
	isLocal := map[string]map[string]bool{} // namespace, name
	for i := range local {
		if isLocal[local[i].Namespace] == nil {
			isLocal[local[i].Namespace] = map[string]bool{}
		}
		isLocal[local[i].Namespace][local[i].Name] = true
		l := local[i].Labels
		if o, ok, _ := c.pods.GetIndexer().GetByKey(local[i].Key()); ok {
			if p, isPod := o.(*PolicyPod); isPod && (local[i].UID == "" || p.Pod.UID == local[i].UID) {
				l = p.Pod.Labels
			}
		}
		sets[local[i].Namespace] = append(sets[local[i].Namespace], labels.Set(l))
	}
	c.relMu.Lock()
	active := activePolicies(c.compiledPolicies(), sets)
	c.relMu.Unlock()
	for i := range active {
		in.Policies = append(in.Policies, *active[i].np)
	}
	peers := newPeerIndex(active, c.nsLabels)
	for _, o := range objs {
		p, ok := o.(*PolicyPod)
		if !ok || !p.Applies {
			continue
		}
		// peer reads the namespace's labels itself, once per namespace.
		if p.Pod.Node == c.node || isLocal[p.Pod.Namespace][p.Pod.Name] || peers.peer(podView{namespace: p.Pod.Namespace, labels: labels.Set(p.Pod.Labels), named: len(p.Pod.Ports) > 0}) {
			in.Pods = append(in.Pods, p.Pod)
		}
	}
	return in
}

// Pod returns one pod as policy sees it: from the cache, or with a GET when
// the cache does not have it yet or still has an earlier pod of that name
// (uid, when set, is the one wanted). A CNI ADD can come before the pod's
// watch event, and its labels decide its rules.
func (c *Cluster) Pod(ctx context.Context, namespace, name, uid string) (*policy.Pod, error) {
	o, ok, err := c.pods.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil {
		return nil, fmt.Errorf("read pod %s/%s from cache: %w", namespace, name, err)
	}
	if p, isPod := o.(*PolicyPod); ok && isPod && (uid == "" || p.Pod.UID == uid) {
		pp := p.Pod
		return &pp, nil
	}
	// The cache converts with policyPod too: a fetched pod is the same.
	full := &corev1.Pod{}
	if err := c.client.Get(ctx, apiclient.Pods, namespace, name, full); err != nil {
		return nil, fmt.Errorf("get pod %s/%s: %w", namespace, name, err)
	}
	pp, _ := policyPod(full)
	return &pp, nil
}

// policyPod is the one place a Kubernetes pod becomes the translator's pod.
// ok is false for pods NetworkPolicy neither applies to nor selects:
// host-network pods (their address is the node's) and pods that have
// finished (their addresses may already be another pod's).
func policyPod(p *corev1.Pod) (policy.Pod, bool) {
	out := policy.Pod{
		Namespace: p.Namespace,
		Name:      p.Name,
		UID:       string(p.UID),
		Labels:    p.Labels,
		Node:      p.Spec.NodeName,
	}
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			out.IPs = append(out.IPs, a)
		}
	}
	for _, ctr := range p.Spec.Containers {
		for _, port := range ctr.Ports {
			proto, ok := policy.ParseProtocol(string(port.Protocol))
			if port.Name == "" || !ok || port.ContainerPort < 1 || port.ContainerPort > 65535 {
				continue
			}
			out.Ports = append(out.Ports, policy.ContainerPort{Name: port.Name, Protocol: proto, Port: uint16(port.ContainerPort)})
		}
	}
	done := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	return out, !p.Spec.HostNetwork && !done
}

// PolicyPod is what the cluster pod informer keeps of a pod: the
// translator's pod, converted once when the pod arrives (policyPod), and
// the resource version; the cache reads name, namespace and UID from the
// pod (GetObjectMeta). A corev1.Pod, even stripped, is a few kilobytes of
// mostly empty structs, and an ObjectMeta alone 232 bytes; this is under
// 200 bytes and the strings it points to, with its labels shared among
// the pods that have the same (intern.go): that is what makes a cache of
// 30,000 pods small.
type PolicyPod struct {
	Pod             policy.Pod
	ResourceVersion string
	// Applies is false for pods NetworkPolicy neither applies to nor
	// selects (host-network, finished).
	Applies bool
	// labels holds Pod.Labels' shared map alive (intern.go).
	labels *sharedLabels
}

// GetObjectMeta is what the informer's cache reads of the record (key,
// indexes, resource version), built on demand rather than stored.
func (p *PolicyPod) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Name: p.Pod.Name, Namespace: p.Pod.Namespace, UID: types.UID(p.Pod.UID), ResourceVersion: p.ResourceVersion}
}

// StripPolicyPod is the cluster pod informer's transform: a pod becomes a
// *PolicyPod (identity, labels, node, addresses, named container ports,
// whether policy applies to it); everything else is dropped.
func StripPolicyPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone, or an already converted pod
	}
	pp, applies := policyPod(pod)
	l := labelSets.intern(pp.Labels)
	pp.Labels = l.m()
	return &PolicyPod{Pod: pp, ResourceVersion: pod.ResourceVersion, Applies: applies, labels: l}, nil
}

// StripNamespace keeps a namespace's name and labels.
func StripNamespace(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion, Labels: ns.Labels,
	}}, nil
}

// StripNetworkPolicy keeps a policy's identity and spec (not its
// annotations, which often hold a last-applied copy of the whole object).
func StripNetworkPolicy(obj any) (any, error) {
	np, ok := obj.(*networkingv1.NetworkPolicy)
	if !ok {
		return obj, nil
	}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name: np.Name, Namespace: np.Namespace, UID: np.UID, ResourceVersion: np.ResourceVersion,
		},
		Spec: np.Spec,
	}, nil
}

// The update filters: an update matters when what the transform kept,
// less the resource version, changed.

func samePolicy(a, b any) bool {
	x, ok1 := a.(*networkingv1.NetworkPolicy)
	y, ok2 := b.(*networkingv1.NetworkPolicy)
	return ok1 && ok2 && x.UID == y.UID && equality.Semantic.DeepEqual(x.Spec, y.Spec)
}

func sameNamespace(a, b any) bool {
	x, ok1 := a.(*corev1.Namespace)
	y, ok2 := b.(*corev1.Namespace)
	return ok1 && ok2 && x.UID == y.UID && maps.Equal(x.Labels, y.Labels)
}

func samePolicyPod(a, b any) bool {
	x, ok1 := a.(*PolicyPod)
	y, ok2 := b.(*PolicyPod)
	return ok1 && ok2 && x.Pod.UID == y.Pod.UID && x.Applies == y.Applies && samePod(&x.Pod, &y.Pod)
}

func samePod(x, y *policy.Pod) bool {
	return maps.Equal(x.Labels, y.Labels) && x.Node == y.Node && x.Iface == y.Iface &&
		slices.Equal(x.IPs, y.IPs) && slices.Equal(x.Ports, y.Ports)
}
