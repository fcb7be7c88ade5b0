package kube

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/kube/apiclient"
	"github.com/fritzlab/flock/pkg/lbannounce"
)

// Services serves what the announcement of LoadBalancer Service addresses
// needs (lbannounce.Source): every Service, every EndpointSlice and every
// ServiceAddressPool of the cluster, each kept as a record of a few dozen
// bytes (the transforms below), never as the object: a cluster of 30,000
// pods has as many endpoints, and the agent of every node watches them.
// Its handlers poke one channel when a change can change what this node
// announces: a Service flock serves, the Ready endpoints of one, a pool.
type Services struct {
	node     string
	services cache.SharedIndexInformer
	slices   cache.SharedIndexInformer
	pools    cache.SharedIndexInformer
	changes  chan struct{}
	log      *slog.Logger

	mu     sync.Mutex
	logged map[string]string // pool name -> the error last logged
}

// serviceIndex indexes EndpointSlice records by their Service's key.
const serviceIndex = "service"

func sliceService(obj any) ([]string, error) {
	if s, ok := obj.(*EndpointCounts); ok && s.Service != "" {
		return []string{s.Namespace + "/" + s.Service}, nil
	}
	return nil, nil
}

// NewServices builds the three informers for node; nothing runs until Run.
func NewServices(client apiclient.Interface, dyn dynamic.Interface, node string, log *slog.Logger) *Services {
	withService := func(o *metav1.ListOptions) { o.LabelSelector = discoveryv1.LabelServiceName }
	if log == nil {
		log = slog.Default()
	}
	s := &Services{
		node:     node,
		services: cache.NewSharedIndexInformer(client.ListWatch(apiclient.Services, metav1.NamespaceAll, nil), &corev1.Service{}, 0, cache.Indexers{}),
		slices: cache.NewSharedIndexInformer(client.ListWatch(apiclient.EndpointSlices, metav1.NamespaceAll, withService),
			&discoveryv1.EndpointSlice{}, 0, cache.Indexers{serviceIndex: sliceService}),
		pools:   apiclient.NewDynamicInformer(dyn, v1alpha1.ServiceAddressPoolGVR, nil, cache.Indexers{}),
		changes: make(chan struct{}, 1),
		log:     log,
		logged:  map[string]string{},
	}
	// The errors are only for informers that already run.
	_ = s.services.SetTransform(StripService)
	_ = s.slices.SetTransform(func(obj any) (any, error) { return CountEndpoints(obj, node) })
	_ = s.pools.SetTransform(StripServiceAddressPool)
	_, _ = s.services.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.serviceChanged(nil, obj) },
		DeleteFunc: func(obj any) { s.serviceChanged(obj, nil) },
		UpdateFunc: s.serviceChanged,
	})
	_, _ = s.slices.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.sliceChanged(nil, obj) },
		DeleteFunc: func(obj any) { s.sliceChanged(obj, nil) },
		UpdateFunc: s.sliceChanged,
	})
	_, _ = s.pools.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.poolChanged(nil, obj) },
		DeleteFunc: func(obj any) { s.poolChanged(obj, nil) },
		UpdateFunc: s.poolChanged,
	})
	return s
}

// Run runs the informers until ctx ends.
func (s *Services) Run(ctx context.Context) {
	go s.slices.RunWithContext(ctx)
	go s.pools.RunWithContext(ctx)
	s.services.RunWithContext(ctx)
}

// HasSynced reports whether the three informers have listed once.
func (s *Services) HasSynced() bool {
	return s.services.HasSynced() && s.slices.HasSynced() && s.pools.HasSynced()
}

// Changes is poked (one slot, never blocking) on every change that can
// change what the node announces.
func (s *Services) Changes() <-chan struct{} { return s.changes }

// Snapshot returns the Services of type LoadBalancer, the Ready endpoints
// of each, and the valid pools, oldest first (lbannounce.Source).
func (s *Services) Snapshot() ([]lbannounce.Service, map[string]lbannounce.Endpoints, []lbannounce.Pool) {
	var svcs []lbannounce.Service
	eps := map[string]lbannounce.Endpoints{}
	for _, obj := range s.services.GetStore().List() {
		r, ok := obj.(*LBService)
		if !ok || !r.Service.LoadBalancer {
			continue
		}
		svcs = append(svcs, r.Service)
		key := r.Service.Key()
		objs, _ := s.slices.GetIndexer().ByIndex(serviceIndex, key)
		var e lbannounce.Endpoints
		for _, o := range objs {
			c, ok := o.(*EndpointCounts)
			if !ok {
				continue
			}
			f := &e.IPv6
			if c.AddressType == discoveryv1.AddressTypeIPv4 {
				f = &e.IPv4
			}
			f.Local += c.Local
			f.Ready += c.Ready
		}
		eps[key] = e
	}
	var pools []*AddressPool
	for _, obj := range s.pools.GetStore().List() {
		if p, ok := obj.(*AddressPool); ok && p.Err == "" {
			pools = append(pools, p)
		}
	}
	slices.SortFunc(pools, func(a, b *AddressPool) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(a.Name, b.Name))
	})
	out := make([]lbannounce.Pool, len(pools))
	for i, p := range pools {
		out[i] = p.Pool
	}
	return svcs, eps, out
}

// serviceChanged pokes when a Service flock serves appears, goes, or
// changes what the decision reads; other Services never wake the agent.
func (s *Services) serviceChanged(old, cur any) {
	o, _ := tombstone(old).(*LBService)
	c, _ := cur.(*LBService)
	ours := func(r *LBService) bool { return r != nil && r.Service.Ours() }
	if !ours(o) && !ours(c) {
		return
	}
	if o != nil && c != nil && sameLBService(o.Service, c.Service) {
		return
	}
	poke(s.changes)
}

// sliceChanged pokes when the Ready endpoint counts of a Service flock
// serves changed.
func (s *Services) sliceChanged(old, cur any) {
	o, _ := tombstone(old).(*EndpointCounts)
	c, _ := cur.(*EndpointCounts)
	if o != nil && c != nil && o.Service == c.Service && o.AddressType == c.AddressType && o.Local == c.Local && o.Ready == c.Ready {
		return
	}
	for _, r := range []*EndpointCounts{o, c} {
		if r == nil || r.Service == "" {
			continue
		}
		obj, ok, _ := s.services.GetStore().GetByKey(r.Namespace + "/" + r.Service)
		if svc, isSvc := obj.(*LBService); ok && isSvc && svc.Service.Ours() {
			poke(s.changes)
			return
		}
	}
}

// poolChanged pokes on any change of a pool's spec, and logs a pool the
// agent refuses (the schema should have refused it first).
func (s *Services) poolChanged(old, cur any) {
	o, _ := tombstone(old).(*AddressPool)
	c, _ := cur.(*AddressPool)
	if c != nil {
		s.mu.Lock()
		if s.logged[c.Name] != c.Err {
			s.logged[c.Name] = c.Err
			if c.Err != "" {
				s.log.Error("serviceaddresspool ignored", "pool", c.Name, "err", c.Err)
			}
		}
		s.mu.Unlock()
	} else if o != nil {
		s.mu.Lock()
		delete(s.logged, o.Name)
		s.mu.Unlock()
	}
	if o != nil && c != nil && o.Err == c.Err && samePool(o.Pool, c.Pool) && o.CreationTimestamp.Equal(&c.CreationTimestamp) {
		return
	}
	poke(s.changes)
}

func tombstone(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

// LBService is what the Service informer keeps of a Service: its identity
// and lbannounce's record of it (converted once, when it arrives).
type LBService struct {
	metav1.ObjectMeta // name, namespace, uid and resource version only
	Service           lbannounce.Service
}

// StripService is the Service informer's transform.
func StripService(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil // a tombstone, or an already converted Service
	}
	r := lbannounce.Service{
		Namespace:    svc.Namespace,
		Name:         svc.Name,
		LoadBalancer: svc.Spec.Type == corev1.ServiceTypeLoadBalancer,
		Local:        svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
	}
	if svc.Spec.LoadBalancerClass != nil {
		r.Class = *svc.Spec.LoadBalancerClass
	}
	// Only a Service flock serves needs its addresses: another class's
	// ingress list would sit in every agent unused.
	if r.Ours() {
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil {
				r.Ingress = append(r.Ingress, a)
			}
		}
		slices.SortFunc(r.Ingress, netip.Addr.Compare)
		r.Ingress = slices.Compact(r.Ingress)
	}
	return &LBService{
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, UID: svc.UID, ResourceVersion: svc.ResourceVersion},
		Service:    r,
	}, nil
}

func sameLBService(a, b lbannounce.Service) bool {
	return a.LoadBalancer == b.LoadBalancer && a.Class == b.Class && a.Local == b.Local && slices.Equal(a.Ingress, b.Ingress)
}

// EndpointCounts is what the EndpointSlice informer keeps of a slice: its
// identity, its Service, its family, and how many of its endpoints are
// Ready on this node and anywhere.
type EndpointCounts struct {
	metav1.ObjectMeta // name, namespace, uid and resource version only
	// Service is the slice's kubernetes.io/service-name label.
	Service     string
	AddressType discoveryv1.AddressType
	// Local are the Ready endpoints on this node, Ready those anywhere.
	Local, Ready int
}

// CountEndpoints is the EndpointSlice informer's transform for node. An
// endpoint counts as Ready when conditions.ready is true or unset (the API
// says to read unset as ready, and kube-proxy does); serving, terminating
// endpoints do not count (lbannounce's package comment says why). FQDN
// slices count nothing: kube-proxy ignores them too.
func CountEndpoints(obj any, node string) (any, error) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil // a tombstone, or an already converted slice
	}
	r := &EndpointCounts{
		ObjectMeta:  metav1.ObjectMeta{Name: es.Name, Namespace: es.Namespace, UID: es.UID, ResourceVersion: es.ResourceVersion},
		Service:     es.Labels[discoveryv1.LabelServiceName],
		AddressType: es.AddressType,
	}
	if es.AddressType != discoveryv1.AddressTypeIPv6 && es.AddressType != discoveryv1.AddressTypeIPv4 {
		return r, nil
	}
	for _, ep := range es.Endpoints {
		if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
			continue
		}
		r.Ready++
		if ep.NodeName != nil && *ep.NodeName == node {
			r.Local++
		}
	}
	return r, nil
}

// AddressPool is what the ServiceAddressPool informer keeps of a pool:
// its identity and age, and the parsed pool or why the agent refuses it.
type AddressPool struct {
	metav1.ObjectMeta // name, uid, resource version, creation time only
	Pool              lbannounce.Pool
	Err               string
}

// StripServiceAddressPool is the ServiceAddressPool informer's transform.
func StripServiceAddressPool(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil // a tombstone, or an already converted pool
	}
	cidrs, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "cidrs")
	comms, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "communities")
	large, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "largeCommunities")
	r := &AddressPool{ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), UID: u.GetUID(),
		ResourceVersion: u.GetResourceVersion(), CreationTimestamp: u.GetCreationTimestamp()}}
	p, err := lbannounce.ParsePool(u.GetName(), cidrs, comms, large)
	if err != nil {
		r.Err = err.Error()
	}
	r.Pool = p
	return r, nil
}

func samePool(a, b lbannounce.Pool) bool {
	return a.Name == b.Name && slices.Equal(a.CIDRs, b.CIDRs) && slices.Equal(a.Communities, b.Communities) &&
		slices.Equal(a.LargeCommunities, b.LargeCommunities)
}
