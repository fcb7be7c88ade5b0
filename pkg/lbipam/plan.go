// Package lbipam decides the addresses of Services of type LoadBalancer
// from the ServiceAddressPools: Compute is the pure decision, Controller
// (controller.go) feeds it from informers while flock-controller leads and
// writes status.loadBalancer.ingress, the pools' status and the Events.
//
// The Services' status is the only state. A new leader (after a restart
// or a failover) reads every assignment back from the Services and keeps
// it while it is still valid, so addresses never move because the leader
// changed. Given the same objects, every replica computes the same plan:
// Services are served oldest first (creationTimestamp, then
// namespace/name), pools oldest first, and a new address is the lowest
// free one.
//
// Who keeps an address two Services want: the one whose status holds it
// (the routers already send it that Service's traffic); when two statuses
// hold it, or two Services ask for it anew, the older one. The other gets
// a Warning Event (ReasonAddressInUse) and no address, or another one when
// it did not ask for that exact address.
package lbipam

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// Reasons of the Warning Events on Services.
const (
	// ReasonAddressInUse: an address the Service asks for (annotation
	// flock.fritzlab.net/load-balancer-ips) is another Service's.
	ReasonAddressInUse = "AddressInUse"
	// ReasonPoolExhausted: no pool the Service may use has a free address
	// of a family it needs; the message names the pools and the family.
	ReasonPoolExhausted = "AddressPoolExhausted"
	// ReasonInvalidIPs: the annotation flock.fritzlab.net/load-balancer-ips
	// (or the deprecated spec.loadBalancerIP without it) does not parse, asks for a family the Service lacks, or an address
	// no pool the Service may use holds.
	ReasonInvalidIPs = "InvalidLoadBalancerIPs"
	// ReasonNoPool: no usable pool serves the Service: the annotation
	// flock.fritzlab.net/address-pool names a missing, unusable or
	// unselecting pool, no autoAssign pool selects it, or none has a
	// family it requires.
	ReasonNoPool = "NoAddressPool"
)

// Reasons of the Normal Events the controller records when it writes a
// Service's status.
const (
	ReasonAssigned = "AddressAssigned"
	ReasonReleased = "AddressReleased"
)

// Input is what a decision is made from.
type Input struct {
	Pools []*v1alpha1.ServiceAddressPool
	// PodPools are the ranges pods take addresses from.
	PodPools []PodPool
	// ServiceCIDRs are the cluster's Service ranges.
	ServiceCIDRs []ServiceCIDR
	Services     []Service
	// Namespaces are the namespaces' labels, by name (for the pools'
	// namespaceSelector).
	Namespaces map[string]map[string]string
	// Now stamps changed conditions.
	Now time.Time
}

// Result is the addresses a Service must have in status.
type Result struct {
	Namespace, Name string
	UID             types.UID
	// Addrs are primary family first; none: the ingress list is cleared.
	Addrs []netip.Addr
	// Pools are the pool of each address.
	Pools []string
}

// Event is a Warning Event to record on a Service.
type Event struct {
	Namespace, Name string
	UID             types.UID
	Reason, Message string
}

// Plan is the decision.
type Plan struct {
	// Services are every served Service, and every other one whose status
	// holds an address of a pool although it is no LoadBalancer any more
	// (its type changed): that one's Addrs are empty. kube-apiserver clears
	// the status on a type change itself; this covers one that did not
	// (older, or a restored backup). A Service of another class is left
	// to its implementation, whatever its status holds. By namespace/name.
	Services []Result
	// Pools are every pool's new status, by name.
	Pools  map[string]v1alpha1.ServiceAddressPoolStatus
	Events []Event
}

// state is one served Service during the decision.
type state struct {
	s        *Service
	fams     []corev1.IPFamily
	req      []netip.Addr
	reqErr   error
	eligible []*pool // usable pools selecting it (only the named one, if any)
	noPool   string  // why the named pool serves it not
	addrs    map[corev1.IPFamily]netip.Addr
	pools    map[corev1.IPFamily]*pool
}

// Compute decides every Service's addresses and every pool's status.
func Compute(in Input) *Plan {
	ps := parsePools(in.Pools, in.PodPools, in.ServiceCIDRs)
	byName := map[string]*pool{}
	for _, p := range ps {
		byName[p.name()] = p
	}
	svcs := make([]*Service, 0, len(in.Services))
	for i := range in.Services {
		svcs = append(svcs, &in.Services[i])
	}
	slices.SortFunc(svcs, func(a, b *Service) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.Key(), b.Key())
	})
	plan := &Plan{Pools: map[string]v1alpha1.ServiceAddressPoolStatus{}}
	var served []*state
	for _, s := range svcs {
		if !s.Served() {
			if !s.LoadBalancer && slices.ContainsFunc(s.Ingress, func(a netip.Addr) bool {
				return slices.ContainsFunc(ps, func(p *pool) bool { return p.contains(a) })
			}) {
				plan.Services = append(plan.Services, Result{Namespace: s.Namespace, Name: s.Name, UID: s.UID})
			}
			continue
		}
		st := &state{s: s, fams: s.families(), addrs: map[corev1.IPFamily]netip.Addr{}, pools: map[corev1.IPFamily]*pool{}}
		if s.HasIPs {
			st.req, st.reqErr = parseIPs(s.ipsField(), s.IPs)
		}
		ns := in.Namespaces[s.Namespace]
		if s.Pool != "" {
			switch p := byName[s.Pool]; {
			case p == nil:
				st.noPool = fmt.Sprintf("annotation %s names ServiceAddressPool %q, which does not exist", v1alpha1.AnnotationAddressPool, s.Pool)
			case p.problem != nil:
				st.noPool = fmt.Sprintf("annotation %s names ServiceAddressPool %q, which is not usable (%s: %s)", v1alpha1.AnnotationAddressPool, s.Pool, p.problem.Reason, p.problem.Message)
			case !p.allows(s, ns):
				st.noPool = fmt.Sprintf("annotation %s names ServiceAddressPool %q, whose serviceSelector or namespaceSelector does not select this Service", v1alpha1.AnnotationAddressPool, s.Pool)
			default:
				st.eligible = []*pool{p}
			}
		} else {
			for _, p := range ps {
				if p.allows(s, ns) {
					st.eligible = append(st.eligible, p)
				}
			}
		}
		served = append(served, st)
	}
	// What the statuses hold first, oldest Service first: a holder keeps
	// its address against any new request.
	for _, st := range served {
		st.keep()
	}
	for _, st := range served {
		plan.Events = append(plan.Events, st.assign()...)
	}
	for _, st := range served {
		r := Result{Namespace: st.s.Namespace, Name: st.s.Name, UID: st.s.UID}
		for _, f := range st.fams {
			if a, ok := st.addrs[f]; ok {
				r.Addrs, r.Pools = append(r.Addrs, a), append(r.Pools, st.pools[f].name())
			}
		}
		plan.Services = append(plan.Services, r)
	}
	slices.SortFunc(plan.Services, func(a, b Result) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for _, p := range ps {
		plan.Pools[p.name()] = p.status(in.Now)
	}
	return plan
}

// keep takes the addresses of the Service's status that are still valid:
// of a family it has, in a pool it may use (autoAssign does not matter: a
// pool turned manual keeps what it gave), the address it asks for if it
// asks, and no older Service's.
func (st *state) keep() {
	for _, a := range st.s.Ingress {
		f := Family(a)
		if _, dup := st.addrs[f]; dup || !slices.Contains(st.fams, f) {
			continue
		}
		if st.reqErr == nil && st.req != nil && !slices.Contains(st.req, a) {
			continue
		}
		i := slices.IndexFunc(st.eligible, func(p *pool) bool { return p.contains(a) })
		if i < 0 {
			continue
		}
		p := st.eligible[i]
		if _, taken := p.used[a]; taken {
			continue
		}
		st.take(p, a)
	}
}

func (st *state) take(p *pool, a netip.Addr) {
	p.used[a] = st.s.Key()
	st.addrs[Family(a)], st.pools[Family(a)] = a, p
}

// release gives back everything the Service holds.
func (st *state) release() {
	for f, a := range st.addrs {
		delete(st.pools[f].used, a)
	}
	clear(st.addrs)
	clear(st.pools)
}

func (st *state) event(reason, format string, a ...any) Event {
	return Event{Namespace: st.s.Namespace, Name: st.s.Name, UID: st.s.UID, Reason: reason, Message: fmt.Sprintf(format, a...)}
}

// assign gives the Service the addresses it lacks.
func (st *state) assign() []Event {
	switch {
	case st.noPool != "":
		return []Event{st.event(ReasonNoPool, "%s", st.noPool)}
	case st.reqErr != nil:
		return []Event{st.event(ReasonInvalidIPs, "%v", st.reqErr)}
	case len(st.fams) == 0:
		return nil // no cluster IP family: nothing kube-proxy could serve
	case st.req != nil:
		return st.assignRequested()
	}
	return st.assignAuto()
}

// assignRequested takes the addresses the annotation asks for: all of
// them, or none that the Service does not hold already.
func (st *state) assignRequested() []Event {
	ann := fmt.Sprintf("%s %q", st.s.ipsField(), st.s.IPs)
	for _, a := range st.req {
		if !slices.Contains(st.fams, Family(a)) {
			return []Event{st.event(ReasonInvalidIPs, "%s: %s is %s, and the Service gets addresses of %v only (spec.ipFamilies, spec.ipFamilyPolicy)", ann, a, Family(a), st.fams)}
		}
	}
	if st.s.Policy == corev1.IPFamilyPolicyRequireDualStack && len(st.req) < 2 {
		return []Event{st.event(ReasonInvalidIPs, "%s: ipFamilyPolicy RequireDualStack needs one address of each family", ann)}
	}
	type want struct {
		p *pool
		a netip.Addr
	}
	var todo []want
	for _, a := range st.req {
		if st.addrs[Family(a)] == a {
			continue
		}
		i := slices.IndexFunc(st.eligible, func(p *pool) bool { return p.contains(a) })
		if i < 0 {
			return []Event{st.event(ReasonInvalidIPs, "%s: %s is in no ServiceAddressPool this Service may use", ann, a)}
		}
		p := st.eligible[i]
		if holder, taken := p.used[a]; taken {
			return []Event{st.event(ReasonAddressInUse, "%s: %s is assigned to Service %s, which holds it or is older", ann, a, holder)}
		}
		todo = append(todo, want{p, a})
	}
	for _, w := range todo {
		st.take(w.p, w.a)
	}
	return nil
}

// assignAuto takes the lowest free addresses of the families the Service
// lacks: from the pool it names, else from the autoAssign pools, oldest
// first, preferring the pool it already has an address of and one pool for
// both families.
func (st *state) assignAuto() []Event {
	var missing []corev1.IPFamily
	for _, f := range st.fams {
		if _, ok := st.addrs[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var cands []*pool
	for _, p := range st.eligible {
		if st.s.Pool != "" || p.auto {
			cands = append(cands, p)
		}
	}
	// The pool of an address the Service has first: both of its
	// addresses from one pool, as the announcements' communities are.
	slices.SortStableFunc(cands, func(a, b *pool) int {
		return cmp.Compare(st.rank(a), st.rank(b))
	})
	none := len(st.addrs) == 0
	if len(cands) == 0 {
		if none {
			return []Event{st.event(ReasonNoPool, "no usable ServiceAddressPool with autoAssign selects this Service")}
		}
		return nil
	}
	if st.takeAll(cands, missing) {
		return nil
	}
	if st.s.Policy == corev1.IPFamilyPolicyRequireDualStack {
		var full []*pool
		for _, p := range cands {
			if !slices.ContainsFunc(missing, func(f corev1.IPFamily) bool { return !p.has(f) }) {
				full = append(full, p)
			}
		}
		st.release()
		if len(full) == 0 {
			return []Event{st.event(ReasonNoPool, "ipFamilyPolicy RequireDualStack: no ServiceAddressPool this Service may use (%s) has both %v", names(cands), st.fams)}
		}
		for _, p := range full {
			for _, f := range missing {
				if _, ok := p.next(f); !ok {
					p.exhausted[f] = true
				}
			}
		}
		return []Event{st.event(ReasonPoolExhausted, "ipFamilyPolicy RequireDualStack: no ServiceAddressPool (%s) has a free address of each of %v", names(full), missing)}
	}
	var evs []Event
	for _, f := range missing {
		if st.takeAll(cands, []corev1.IPFamily{f}) {
			none = false
			continue
		}
		var with []*pool
		for _, p := range cands {
			if p.has(f) {
				with = append(with, p)
				p.exhausted[f] = true
			}
		}
		if len(with) > 0 {
			evs = append(evs, st.event(ReasonPoolExhausted, "no free %s address in ServiceAddressPool(s) %s", f, names(with)))
		} else if len(st.fams) == 1 {
			evs = append(evs, st.event(ReasonNoPool, "no ServiceAddressPool this Service may use (%s) has %s addresses", names(cands), f))
		}
		// PreferDualStack without a pool of the family: the other one
		// alone, as asked, and no Event.
	}
	if none && len(evs) == 0 {
		evs = append(evs, st.event(ReasonNoPool, "no ServiceAddressPool this Service may use (%s) has %v addresses", names(cands), st.fams))
	}
	return evs
}

// rank is 0 for a pool the Service has an address of, else 1.
func (st *state) rank(p *pool) int {
	for _, q := range st.pools {
		if q == p {
			return 0
		}
	}
	return 1
}

// takeAll takes one address of each family fs from the first pool of
// cands that has them all free.
func (st *state) takeAll(cands []*pool, fs []corev1.IPFamily) bool {
	for _, p := range cands {
		var got []netip.Addr
		for _, f := range fs {
			a, ok := p.next(f)
			if !ok {
				break
			}
			got = append(got, a)
		}
		if len(got) == len(fs) {
			for _, a := range got {
				st.take(p, a)
			}
			return true
		}
	}
	return false
}
