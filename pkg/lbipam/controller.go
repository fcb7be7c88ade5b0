package lbipam

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/leaderterm"
)

// DefaultResync is how often a pass runs without a change.
const DefaultResync = 30 * time.Second

// FieldManager is the name the controller's writes go by.
const FieldManager = "flock-controller"

// Options are what a Controller works with.
type Options struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Log     *slog.Logger
	// Resync is DefaultResync when 0.
	Resync time.Duration
}

// Controller assigns the addresses of Services of type LoadBalancer. Run
// it only while leading (pkg/leader), under the same Lease as the NodePool
// controller: two running at once could give one address to two Services.
//
// It runs in flock-controller, not in the agents: assigning needs write
// access to every Service's status, and the agents' RBAC stays scoped to
// their node (least privilege); flock-controller's Lease already makes
// one leader per cluster.
type Controller struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	assigned []Usage
}

// Usage counts one pool's assigned addresses of one family (for metrics).
type Usage struct {
	Pool   string
	Family corev1.IPFamily
	Used   int64
}

// New builds a controller; nothing runs until Run.
func New(o Options) *Controller {
	if o.Resync == 0 {
		o.Resync = DefaultResync
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Controller{o: o, log: o.Log}
}

// Assigned is what the last pass counted, by pool and family; nothing
// while not leading.
func (c *Controller) Assigned() []Usage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.assigned)
}

// term is one leadership term: informers started afresh, so a new leader
// decides from what the API server holds now (the Services' status
// included), never from a cache that predates the last leader's writes.
type term struct {
	*Controller
	services, namespaces, pools, configs, nodePools cache.SharedIndexInformer
	serviceCIDRs                                    cache.SharedIndexInformer // nil: the API serves none
	rec                                             record.EventRecorder
	warned                                          map[Event]bool // Events recorded and still true
}

// Run runs passes until ctx ends; it returns ctx's error, or why the
// caches could not sync.
func (c *Controller) Run(ctx context.Context) error {
	defer func() {
		c.mu.Lock()
		c.assigned = nil
		c.mu.Unlock()
	}()
	t := &term{Controller: c, warned: map[Event]bool{}}
	kf := informers.NewSharedInformerFactory(c.o.Kube, 0)
	t.services = kf.Core().V1().Services().Informer()
	t.namespaces = kf.Core().V1().Namespaces().Informer()
	df := dynamicinformer.NewDynamicSharedInformerFactory(c.o.Dynamic, 0)
	t.pools = df.ForResource(v1alpha1.ServiceAddressPoolGVR).Informer()
	t.configs = df.ForResource(v1alpha1.NodeConfigGVR).Informer()
	t.nodePools = df.ForResource(v1alpha1.NodePoolGVR).Informer()
	watched := []cache.SharedIndexInformer{t.services, t.namespaces, t.pools, t.configs, t.nodePools}
	if err := canListServiceCIDRs(ctx, c.o.Kube); err == nil {
		t.serviceCIDRs = kf.Networking().V1().ServiceCIDRs().Informer()
		watched = append(watched, t.serviceCIDRs)
	} else {
		c.log.Warn("pools are not checked against the cluster's Service ranges: cannot list networking.k8s.io/v1 servicecidrs", "err", err)
	}
	var stop func()
	t.rec, stop = leaderterm.Recorder(ctx, c.o.Kube)
	defer stop()
	return leaderterm.Run(ctx, leaderterm.Options{
		Name:      "lbipam",
		Informers: watched,
		Factories: []leaderterm.Factory{kf, df},
		Changed:   changed,
		Resync:    c.o.Resync,
		Pass:      t.pass,
		Log:       c.log,
	})
}

// changed filters out updates the decision does not read: a Service's
// resourceVersion-only changes, Namespaces' status, the pools' status
// (the controller's own writes).
func changed(old, cur any) bool {
	switch o := old.(type) {
	case *corev1.Service:
		n := cur.(*corev1.Service)
		return !equality.Semantic.DeepEqual(o.Spec, n.Spec) || !equality.Semantic.DeepEqual(o.Labels, n.Labels) ||
			!equality.Semantic.DeepEqual(o.Annotations, n.Annotations) || !equality.Semantic.DeepEqual(o.Status, n.Status)
	case *corev1.Namespace:
		return !equality.Semantic.DeepEqual(o.Labels, cur.(*corev1.Namespace).Labels)
	case *networkingv1.ServiceCIDR:
		return !slices.Equal(o.Spec.CIDRs, cur.(*networkingv1.ServiceCIDR).Spec.CIDRs)
	case *unstructured.Unstructured:
		n := cur.(*unstructured.Unstructured)
		return o.GetGeneration() != n.GetGeneration()
	}
	return true
}

// pass decides from the caches and writes the difference. Releases go
// first: an address leaves one Service's status before another's gets it,
// so a leader dying between the writes never leaves it in two.
func (t *term) pass(ctx context.Context) error {
	byKey := map[string]*corev1.Service{}
	var svcs []Service
	for _, o := range t.services.GetStore().List() {
		s := o.(*corev1.Service)
		byKey[s.Namespace+"/"+s.Name] = s
		svcs = append(svcs, FromService(s))
	}
	nsLabels := map[string]map[string]string{}
	for _, o := range t.namespaces.GetStore().List() {
		ns := o.(*corev1.Namespace)
		nsLabels[ns.Name] = ns.Labels
	}
	pools, err := leaderterm.FromStore[v1alpha1.ServiceAddressPool](t.pools.GetStore())
	if err != nil {
		return err
	}
	pods, err := t.podPools()
	if err != nil {
		return err
	}
	plan := Compute(Input{Pools: pools, PodPools: pods, ServiceCIDRs: t.serviceRanges(), Services: svcs, Namespaces: nsLabels, Now: time.Now()})

	// pending are the addresses still in a status they must leave, by
	// the Service holding them: no grant of one is written before its
	// release is (a leader dying between the writes never leaves an
	// address in two statuses), while grants of other addresses go ahead.
	pending := map[netip.Addr]string{}
	var releases, grants []Result
	for _, r := range plan.Services {
		s := byKey[r.Namespace+"/"+r.Name]
		if s == nil || sameIngress(s.Status.LoadBalancer.Ingress, r.Addrs) {
			continue
		}
		released := false
		for _, in := range s.Status.LoadBalancer.Ingress {
			a, ok := ingressAddr(in)
			if in.IP != "" && (!ok || !slices.Contains(r.Addrs, a)) {
				released = true
			}
			if ok && !slices.Contains(r.Addrs, a) {
				pending[a] = r.Namespace + "/" + r.Name
			}
		}
		if released {
			releases = append(releases, r)
		} else {
			grants = append(grants, r)
		}
	}
	var errs []error
	for _, r := range append(releases, grants...) {
		s := byKey[r.Namespace+"/"+r.Name]
		if a, holder, ok := heldBack(r, s, pending); ok {
			errs = append(errs, fmt.Errorf("service %s/%s: %s waits for its release from service %s", r.Namespace, r.Name, a, holder))
			continue
		}
		if err := t.write(ctx, s, r); err != nil {
			errs = append(errs, err)
			continue
		}
		for a, holder := range pending {
			if holder == r.Namespace+"/"+r.Name {
				delete(pending, a)
			}
		}
	}
	for _, sap := range pools {
		st, ok := plan.Pools[sap.Name]
		if !ok || equality.Semantic.DeepEqual(st, sap.Status) {
			continue
		}
		up := sap.DeepCopy()
		up.Status = st
		u, err := toUnstructured(up)
		if err == nil {
			u, err = t.o.Dynamic.Resource(v1alpha1.ServiceAddressPoolGVR).UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: FieldManager})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("update serviceaddresspool %s status: %w", sap.Name, err))
			continue
		}
		t.pools.GetStore().Update(u)
	}
	t.warn(plan.Events, byKey)
	t.count(plan)
	if len(errs) > 0 {
		return fmt.Errorf("%d of the plan's writes failed, first: %w", len(errs), errs[0])
	}
	return nil
}

// write sets the Service's status.loadBalancer.ingress to r's addresses
// and records what changed as a Normal Event.
func (t *term) write(ctx context.Context, s *corev1.Service, r Result) error {
	up := s.DeepCopy()
	up.Status.LoadBalancer.Ingress = nil
	vip := corev1.LoadBalancerIPModeVIP
	for _, a := range r.Addrs {
		up.Status.LoadBalancer.Ingress = append(up.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: a.String(), IPMode: &vip})
	}
	got, err := t.o.Kube.CoreV1().Services(s.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{FieldManager: FieldManager})
	if err != nil {
		return fmt.Errorf("update service %s/%s status: %w", s.Namespace, s.Name, err)
	}
	t.services.GetStore().Update(got)
	var added, removed []string
	for i, a := range r.Addrs {
		if !statusHolds(s, a) {
			added = append(added, fmt.Sprintf("%s (pool %s)", a, r.Pools[i]))
		}
	}
	for _, in := range s.Status.LoadBalancer.Ingress {
		if a, ok := ingressAddr(in); in.IP != "" && (!ok || !slices.Contains(r.Addrs, a)) {
			removed = append(removed, in.IP)
		}
	}
	if len(removed) > 0 {
		msg := "released " + strings.Join(removed, ", ")
		t.log.Info(msg, "service", s.Namespace+"/"+s.Name)
		t.rec.Event(got, corev1.EventTypeNormal, ReasonReleased, msg)
	}
	if len(added) > 0 {
		msg := "assigned " + strings.Join(added, ", ")
		t.log.Info(msg, "service", s.Namespace+"/"+s.Name)
		t.rec.Event(got, corev1.EventTypeNormal, ReasonAssigned, msg)
	}
	return nil
}

// warn records each Warning Event once while it stays true: one that
// clears and comes back is recorded again.
func (t *term) warn(evs []Event, byKey map[string]*corev1.Service) {
	now := map[Event]bool{}
	for _, e := range evs {
		now[e] = true
		if t.warned[e] {
			continue
		}
		s := byKey[e.Namespace+"/"+e.Name]
		if s == nil {
			continue
		}
		t.log.Warn(e.Message, "service", e.Namespace+"/"+e.Name, "reason", e.Reason)
		t.rec.Event(s, corev1.EventTypeWarning, e.Reason, e.Message)
	}
	t.warned = now
}

func (t *term) count(plan *Plan) {
	var out []Usage
	for name, st := range plan.Pools {
		if st.IPv6 != nil {
			out = append(out, Usage{Pool: name, Family: corev1.IPv6Protocol, Used: st.IPv6.Used})
		}
		if st.IPv4 != nil {
			out = append(out, Usage{Pool: name, Family: corev1.IPv4Protocol, Used: st.IPv4.Used})
		}
	}
	t.mu.Lock()
	t.assigned = out
	t.mu.Unlock()
}

// podPools are the NodeConfigs' pools and the NodePools' ranges.
func (t *term) podPools() ([]PodPool, error) {
	var out []PodPool
	add := func(owner string, cidrs ...string) {
		for _, c := range cidrs {
			if p, err := netip.ParsePrefix(c); err == nil {
				out = append(out, PodPool{Owner: owner, Prefix: p.Masked()})
			}
		}
	}
	ncs, err := leaderterm.FromStore[v1alpha1.NodeConfig](t.configs.GetStore())
	if err != nil {
		return nil, err
	}
	for _, nc := range ncs {
		add("NodeConfig "+nc.Name, nc.Spec.CIDR6, nc.Spec.CIDR4)
	}
	nps, err := leaderterm.FromStore[v1alpha1.NodePool](t.nodePools.GetStore())
	if err != nil {
		return nil, err
	}
	for _, np := range nps {
		add("NodePool "+np.Name, np.Spec.CIDR6, np.Spec.CIDR4)
	}
	return out, nil
}

// heldBack is an address r gives s anew that another Service's status
// still holds (pending), and that Service.
func heldBack(r Result, s *corev1.Service, pending map[netip.Addr]string) (netip.Addr, string, bool) {
	for _, a := range r.Addrs {
		holder, ok := pending[a]
		if ok && holder != r.Namespace+"/"+r.Name && !statusHolds(s, a) {
			return a, holder, true
		}
	}
	return netip.Addr{}, "", false
}

// ingressAddr is an ingress entry's address as FromService reads it: any
// spelling of it (2001:DB8::7, an IPv4-mapped IPv6 one) is the same.
func ingressAddr(in corev1.LoadBalancerIngress) (netip.Addr, bool) {
	a, err := netip.ParseAddr(in.IP)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// statusHolds says whether s's status lists a.
func statusHolds(s *corev1.Service, a netip.Addr) bool {
	return slices.ContainsFunc(s.Status.LoadBalancer.Ingress, func(in corev1.LoadBalancerIngress) bool {
		b, ok := ingressAddr(in)
		return ok && b == a
	})
}

// canListServiceCIDRs says whether the controller may list ServiceCIDRs
// (Kubernetes 1.33 and later, and an RBAC that grants it): an informer on
// a resource the API server does not serve, or the RBAC of an older
// release forbids, would never sync, and the controller never assign.
func canListServiceCIDRs(ctx context.Context, kube kubernetes.Interface) error {
	_, err := kube.NetworkingV1().ServiceCIDRs().List(ctx, metav1.ListOptions{Limit: 1})
	return err
}

// serviceRanges are the ServiceCIDRs' ranges.
func (t *term) serviceRanges() []ServiceCIDR {
	if t.serviceCIDRs == nil {
		return nil
	}
	var out []ServiceCIDR
	for _, o := range t.serviceCIDRs.GetStore().List() {
		sc, ok := o.(*networkingv1.ServiceCIDR)
		if !ok {
			continue
		}
		for _, c := range sc.Spec.CIDRs {
			if p, err := netip.ParsePrefix(c); err == nil {
				out = append(out, ServiceCIDR{Name: sc.Name, Prefix: p.Masked()})
			}
		}
	}
	return out
}

// sameIngress says whether the status already lists exactly addrs, each
// with ipMode VIP and nothing else.
func sameIngress(in []corev1.LoadBalancerIngress, addrs []netip.Addr) bool {
	if len(in) != len(addrs) {
		return false
	}
	for i, a := range addrs {
		e := in[i]
		if e.IP != a.String() || e.Hostname != "" || len(e.Ports) > 0 || e.IPMode == nil || *e.IPMode != corev1.LoadBalancerIPModeVIP {
			return false
		}
	}
	return true
}

func toUnstructured(sap *v1alpha1.ServiceAddressPool) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sap)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(v1alpha1.SchemeGroupVersion.String())
	u.SetKind(v1alpha1.ServiceAddressPoolKind)
	return u, nil
}
