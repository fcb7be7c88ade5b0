package lbipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fritzlab/flock/api/v1alpha1"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// sap is a pool created age minutes after the epoch.
func sap(name string, age int, cidrs ...string) *v1alpha1.ServiceAddressPool {
	return &v1alpha1.ServiceAddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1, CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(age) * time.Minute))},
		Spec:       v1alpha1.ServiceAddressPoolSpec{CIDRs: cidrs},
	}
}

func manual(p *v1alpha1.ServiceAddressPool) *v1alpha1.ServiceAddressPool {
	f := false
	p.Spec.AutoAssign = &f
	return p
}

type opt func(*Service)

// svc is a single-stack IPv4 LoadBalancer Service in namespace ns created
// age minutes after the epoch.
func svc(key string, age int, opts ...opt) Service {
	ns, name, _ := strings.Cut(key, "/")
	s := Service{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Created: epoch.Add(time.Duration(age) * time.Minute),
		LoadBalancer: true, Policy: corev1.IPFamilyPolicySingleStack, Families: []corev1.IPFamily{corev1.IPv4Protocol}}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func fams(p corev1.IPFamilyPolicy, fs ...corev1.IPFamily) opt {
	return func(s *Service) { s.Policy, s.Families = p, fs }
}

var (
	v4, v6  = corev1.IPv4Protocol, corev1.IPv6Protocol
	prefer  = corev1.IPFamilyPolicyPreferDualStack
	require = corev1.IPFamilyPolicyRequireDualStack
	single  = corev1.IPFamilyPolicySingleStack
)

func ips(v string) opt    { return func(s *Service) { s.IPs, s.HasIPs = v, true } }
func inPool(p string) opt { return func(s *Service) { s.Pool = p } }
func class(c string) opt  { return func(s *Service) { s.Class = c } }
func clusterIP() opt      { return func(s *Service) { s.LoadBalancer = false } }
func labelled(k, v string) opt {
	return func(s *Service) { s.Labels = map[string]string{k: v} }
}
func holds(as ...string) opt {
	return func(s *Service) {
		for _, a := range as {
			s.Ingress = append(s.Ingress, netip.MustParseAddr(a))
		}
	}
}

// got is the plan's addresses by Service ("" for none) and its Events as
// "ns/name Reason".
func got(p *Plan) (map[string]string, []string) {
	addrs := map[string]string{}
	for _, r := range p.Services {
		var s []string
		for _, a := range r.Addrs {
			s = append(s, a.String())
		}
		addrs[r.Namespace+"/"+r.Name] = strings.Join(s, ",")
	}
	var evs []string
	for _, e := range p.Events {
		evs = append(evs, e.Namespace+"/"+e.Name+" "+e.Reason)
	}
	return addrs, evs
}

func TestCompute(t *testing.T) {
	dual := sap("dual", 0, "2001:db8:5::/126", "192.0.2.0/30")
	for _, tc := range []struct {
		name     string
		pools    []*v1alpha1.ServiceAddressPool
		pods     []PodPool
		ns       map[string]map[string]string
		services []Service
		want     map[string]string
		events   []string
		// message is a text every Event's message must contain.
		message string
	}{
		{name: "lowest-free-oldest-first", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/b", 2), svc("a/a", 1), svc("a/c", 2)},
			want:     map[string]string{"a/a": "192.0.2.0", "a/b": "192.0.2.1", "a/c": "192.0.2.2"}},
		{name: "single-stack-takes-primary", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/a", 1, fams(single, v6, v4)), svc("a/b", 1, fams("", v6))},
			want:     map[string]string{"a/a": "2001:db8:5::", "a/b": "2001:db8:5::1"}},
		{name: "prefer-dual-both", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/a", 1, fams(prefer, v6, v4)), svc("a/b", 2, fams(prefer, v4, v6))},
			want:     map[string]string{"a/a": "2001:db8:5::,192.0.2.0", "a/b": "192.0.2.1,2001:db8:5::1"}},
		{name: "prefer-dual-one-pool-for-both", pools: []*v1alpha1.ServiceAddressPool{sap("four", 0, "192.0.2.0/30"), sap("both", 1, "2001:db8:5::/126", "198.51.100.0/30")},
			services: []Service{svc("a/a", 1, fams(prefer, v6, v4))},
			want:     map[string]string{"a/a": "2001:db8:5::,198.51.100.0"}},
		{name: "prefer-dual-the-one-family", pools: []*v1alpha1.ServiceAddressPool{sap("four", 0, "192.0.2.0/30")},
			services: []Service{svc("a/a", 1, fams(prefer, v6, v4))},
			want:     map[string]string{"a/a": "192.0.2.0"}},
		{name: "prefer-dual-single-stack-cluster", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/a", 1, fams(prefer, v6))},
			want:     map[string]string{"a/a": "2001:db8:5::"}},
		{name: "require-dual-no-pool", pools: []*v1alpha1.ServiceAddressPool{sap("four", 0, "192.0.2.0/30"), sap("six", 1, "2001:db8:5::/126")},
			services: []Service{svc("a/a", 1, fams(require, v6, v4))},
			want:     map[string]string{"a/a": ""}, events: []string{"a/a NoAddressPool"}, message: "RequireDualStack"},
		{name: "require-dual-exhausted-releases-kept", pools: []*v1alpha1.ServiceAddressPool{sap("p", 0, "2001:db8:5::/128", "192.0.2.0/30")},
			services: []Service{svc("a/old", 1, fams(prefer, v6, v4)), svc("a/new", 2, fams(require, v6, v4), holds("192.0.2.3"))},
			want:     map[string]string{"a/old": "2001:db8:5::,192.0.2.0", "a/new": ""}, events: []string{"a/new AddressPoolExhausted"}, message: "IPv6"},
		{name: "classes", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/none", 1), svc("a/ours", 2, class(v1alpha1.LoadBalancerClass)), svc("a/theirs", 3, class("example.com/lb"), holds("192.0.2.3")), svc("a/cip", 4, clusterIP())},
			want:     map[string]string{"a/none": "192.0.2.0", "a/ours": "192.0.2.1"}},
		{name: "type-changed-releases", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/was", 1, clusterIP(), holds("192.0.2.0")), svc("a/foreign", 1, clusterIP(), holds("203.0.113.1")), svc("a/next", 2)},
			want:     map[string]string{"a/was": "", "a/next": "192.0.2.0"}},
		{name: "requested", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/a", 1, ips("192.0.2.3")), svc("a/b", 2, fams(prefer, v4, v6), ips(" 2001:db8:5::2 , 192.0.2.2")), svc("a/c", 3)},
			want:     map[string]string{"a/a": "192.0.2.3", "a/b": "192.0.2.2,2001:db8:5::2", "a/c": "192.0.2.0"}},
		{name: "requested-outside-pools", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/a", 1, ips("198.51.100.1"))},
			want:     map[string]string{"a/a": ""}, events: []string{"a/a InvalidLoadBalancerIPs"}, message: `flock.fritzlab.net/load-balancer-ips "198.51.100.1"`},
		{name: "requested-family-missing", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/a", 1, ips("2001:db8:5::1"))},
			want:     map[string]string{"a/a": ""}, events: []string{"a/a InvalidLoadBalancerIPs"}, message: "IPv6"},
		{name: "requested-garbage-keeps-held", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/a", 1, ips("192.0.2.300"), holds("192.0.2.2"))},
			want:     map[string]string{"a/a": "192.0.2.2"}, events: []string{"a/a InvalidLoadBalancerIPs"}, message: `"192.0.2.300" is not an IP address`},
		{name: "requested-require-dual-one", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/a", 1, fams(require, v4, v6), ips("192.0.2.1"))},
			want:     map[string]string{"a/a": ""}, events: []string{"a/a InvalidLoadBalancerIPs"}, message: "RequireDualStack"},
		{name: "requested-from-manual-pool", pools: []*v1alpha1.ServiceAddressPool{manual(sap("m", 0, "198.51.100.0/30"))},
			services: []Service{svc("a/a", 1, ips("198.51.100.2"))},
			want:     map[string]string{"a/a": "198.51.100.2"}},
		{name: "requested-not-in-named-pool", pools: []*v1alpha1.ServiceAddressPool{dual, sap("other", 1, "198.51.100.0/30")},
			services: []Service{svc("a/a", 1, ips("192.0.2.1"), inPool("other"))},
			want:     map[string]string{"a/a": ""}, events: []string{"a/a InvalidLoadBalancerIPs"}},
		{name: "conflict-older-wins", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("b/young", 2, ips("192.0.2.1")), svc("a/old", 1, ips("192.0.2.1"))},
			want:     map[string]string{"a/old": "192.0.2.1", "b/young": ""}, events: []string{"b/young AddressInUse"}, message: "a/old"},
		{name: "conflict-same-age-by-name", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("b/x", 1, ips("192.0.2.1")), svc("a/x", 1, ips("192.0.2.1"))},
			want:     map[string]string{"a/x": "192.0.2.1", "b/x": ""}, events: []string{"b/x AddressInUse"}},
		{name: "conflict-holder-keeps", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/young", 2, holds("192.0.2.1")), svc("a/old", 1, ips("192.0.2.1"))},
			want:     map[string]string{"a/young": "192.0.2.1", "a/old": ""}, events: []string{"a/old AddressInUse"}, message: "a/young"},
		{name: "conflict-auto-takes-another", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/req", 1, ips("192.0.2.0")), svc("a/auto", 2)},
			want:     map[string]string{"a/req": "192.0.2.0", "a/auto": "192.0.2.1"}},
		{name: "keep-existing", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/new", 1), svc("a/kept", 2, holds("192.0.2.2")), svc("a/dual", 3, fams(prefer, v6, v4), holds("192.0.2.3", "2001:db8:5::3"))},
			want:     map[string]string{"a/new": "192.0.2.0", "a/kept": "192.0.2.2", "a/dual": "2001:db8:5::3,192.0.2.3"}},
		{name: "keep-dual-adds-from-same-pool", pools: []*v1alpha1.ServiceAddressPool{sap("first", 0, "2001:db8:1::/126", "192.0.2.0/30"), sap("second", 1, "2001:db8:2::/126", "198.51.100.0/30")},
			services: []Service{svc("a/a", 1, fams(prefer, v4, v6), holds("198.51.100.1"))},
			want:     map[string]string{"a/a": "198.51.100.1,2001:db8:2::"}},
		{name: "both-hold-older-keeps", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/young", 2, holds("192.0.2.2")), svc("a/old", 1, holds("192.0.2.2"))},
			want:     map[string]string{"a/old": "192.0.2.2", "a/young": "192.0.2.0"}},
		{name: "held-wrong-family-or-pool-released", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/a", 1, holds("2001:db8:5::1")), svc("a/b", 2, holds("203.0.113.9"))},
			want:     map[string]string{"a/a": "192.0.2.0", "a/b": "192.0.2.1"}},
		{name: "held-not-requested-released", pools: []*v1alpha1.ServiceAddressPool{dual},
			services: []Service{svc("a/a", 1, holds("192.0.2.0"), ips("192.0.2.2"))},
			want:     map[string]string{"a/a": "192.0.2.2"}},
		{name: "held-in-manual-pool-kept", pools: []*v1alpha1.ServiceAddressPool{manual(sap("m", 0, "192.0.2.0/30"))},
			services: []Service{svc("a/a", 1, holds("192.0.2.1")), svc("a/b", 2)},
			want:     map[string]string{"a/a": "192.0.2.1", "a/b": ""}, events: []string{"a/b NoAddressPool"}},
		{name: "exhausted", pools: []*v1alpha1.ServiceAddressPool{sap("tiny", 0, "192.0.2.0/31")},
			services: []Service{svc("a/a", 1), svc("a/b", 2), svc("a/c", 3)},
			want:     map[string]string{"a/a": "192.0.2.0", "a/b": "192.0.2.1", "a/c": ""}, events: []string{"a/c AddressPoolExhausted"}, message: "no free IPv4 address in ServiceAddressPool(s) tiny"},
		{name: "exhausted-falls-to-next-pool", pools: []*v1alpha1.ServiceAddressPool{sap("tiny", 0, "192.0.2.0/32"), sap("more", 1, "198.51.100.0/30")},
			services: []Service{svc("a/a", 1), svc("a/b", 2)},
			want:     map[string]string{"a/a": "192.0.2.0", "a/b": "198.51.100.0"}},
		{name: "prefer-dual-exhausted-family", pools: []*v1alpha1.ServiceAddressPool{sap("p", 0, "2001:db8:5::/128", "192.0.2.0/30")},
			services: []Service{svc("a/a", 1, fams(prefer, v6, v4)), svc("a/b", 2, fams(prefer, v6, v4))},
			want:     map[string]string{"a/a": "2001:db8:5::,192.0.2.0", "a/b": "192.0.2.1"}, events: []string{"a/b AddressPoolExhausted"}, message: "IPv6"},
		{name: "named-pool", pools: []*v1alpha1.ServiceAddressPool{dual, manual(sap("m", 1, "198.51.100.0/30"))},
			services: []Service{svc("a/a", 1, inPool("m")), svc("a/b", 2), svc("a/c", 3, inPool("gone"))},
			want:     map[string]string{"a/a": "198.51.100.0", "a/b": "192.0.2.0", "a/c": ""}, events: []string{"a/c NoAddressPool"}, message: `"gone", which does not exist`},
		{name: "no-auto-pool", pools: []*v1alpha1.ServiceAddressPool{manual(sap("m", 1, "198.51.100.0/30"))},
			services: []Service{svc("a/a", 1)},
			want:     map[string]string{"a/a": ""}, events: []string{"a/a NoAddressPool"}, message: "autoAssign"},
		{name: "selectors", pools: func() []*v1alpha1.ServiceAddressPool {
			web := sap("web", 0, "192.0.2.0/30")
			web.Spec.ServiceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
			team := sap("team", 1, "198.51.100.0/30")
			team.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
			return []*v1alpha1.ServiceAddressPool{web, team}
		}(),
			ns: map[string]map[string]string{"a": {"team": "a"}, "b": {"team": "b"}},
			services: []Service{svc("a/web", 1, labelled("app", "web")), svc("a/db", 2), svc("b/web", 3, labelled("app", "web")),
				svc("b/db", 4), svc("b/named", 5, inPool("team"))},
			want:   map[string]string{"a/web": "192.0.2.0", "a/db": "198.51.100.0", "b/web": "192.0.2.1", "b/db": "", "b/named": ""},
			events: []string{"b/db NoAddressPool", "b/named NoAddressPool"}},
		{name: "pool-overlap-older-wins", pools: []*v1alpha1.ServiceAddressPool{sap("young", 1, "192.0.2.0/28"), sap("old", 0, "192.0.2.8/29")},
			services: []Service{svc("a/a", 1), svc("a/b", 2, inPool("young"))},
			want:     map[string]string{"a/a": "192.0.2.8", "a/b": ""}, events: []string{"a/b NoAddressPool"}, message: "Overlap"},
		{name: "node-pool-overlap", pools: []*v1alpha1.ServiceAddressPool{sap("pods", 0, "10.42.1.0/28"), sap("ok", 1, "192.0.2.0/30")},
			pods:     []PodPool{{Owner: "NodeConfig n1", Prefix: netip.MustParsePrefix("10.42.0.0/16")}},
			services: []Service{svc("a/a", 1, holds("10.42.1.1"))},
			want:     map[string]string{"a/a": "192.0.2.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := Compute(Input{Pools: tc.pools, PodPools: tc.pods, Services: tc.services, Namespaces: tc.ns, Now: epoch})
			addrs, evs := got(plan)
			if diff := cmp.Diff(tc.want, addrs); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
			slices.Sort(evs)
			slices.Sort(tc.events)
			if diff := cmp.Diff(tc.events, evs); diff != "" {
				t.Errorf("events (-want +got):\n%s%v", diff, plan.Events)
			}
			for _, e := range plan.Events {
				if !strings.Contains(e.Message, tc.message) {
					t.Errorf("event %s %q does not say %q", e.Reason, e.Message, tc.message)
				}
			}
			// The same objects in another order give the same plan.
			shuffled := slices.Clone(tc.services)
			rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			pools := slices.Clone(tc.pools)
			slices.Reverse(pools)
			again := Compute(Input{Pools: pools, PodPools: tc.pods, Services: shuffled, Namespaces: tc.ns, Now: epoch})
			if diff := cmp.Diff(plan, again, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("another input order, another plan (-first +second):\n%s", diff)
			}
			checkDistinct(t, plan)
		})
	}
}

// checkDistinct fails when two Services got one address.
func checkDistinct(t *testing.T, p *Plan) {
	t.Helper()
	owner := map[netip.Addr]string{}
	for _, r := range p.Services {
		for _, a := range r.Addrs {
			if o, dup := owner[a]; dup {
				t.Errorf("%s given to %s and %s/%s", a, o, r.Namespace, r.Name)
			}
			owner[a] = r.Namespace + "/" + r.Name
		}
	}
}

// apply writes the plan's addresses into the Services' status, as the
// controller does.
func apply(svcs []Service, p *Plan) []Service {
	out := slices.Clone(svcs)
	for i := range out {
		for _, r := range p.Services {
			if r.Namespace == out[i].Namespace && r.Name == out[i].Name {
				out[i].Ingress = slices.Clone(r.Addrs)
			}
		}
	}
	return out
}

// Deleting a Service frees its address for the one that waited; a type
// change releases it; the others keep theirs through every pass.
func TestReleaseAndReuse(t *testing.T) {
	pools := []*v1alpha1.ServiceAddressPool{sap("tiny", 0, "192.0.2.0/31")}
	svcs := []Service{svc("a/a", 1), svc("a/b", 2), svc("a/c", 3)}
	pass := func() map[string]string {
		p := Compute(Input{Pools: pools, Services: svcs, Now: epoch})
		svcs = apply(svcs, p)
		a, _ := got(p)
		return a
	}
	if diff := cmp.Diff(map[string]string{"a/a": "192.0.2.0", "a/b": "192.0.2.1", "a/c": ""}, pass()); diff != "" {
		t.Fatalf("first pass (-want +got):\n%s", diff)
	}
	svcs = slices.Delete(svcs, 0, 1) // a/a deleted
	if diff := cmp.Diff(map[string]string{"a/b": "192.0.2.1", "a/c": "192.0.2.0"}, pass()); diff != "" {
		t.Fatalf("after a/a was deleted (-want +got):\n%s", diff)
	}
	svcs[0].LoadBalancer = false // a/b becomes ClusterIP
	svcs = append(svcs, svc("a/d", 4))
	if diff := cmp.Diff(map[string]string{"a/b": "", "a/c": "192.0.2.0", "a/d": "192.0.2.1"}, pass()); diff != "" {
		t.Fatalf("after a/b's type changed (-want +got):\n%s", diff)
	}
	// Cleared: the former LoadBalancer is no longer in the plan.
	if diff := cmp.Diff(map[string]string{"a/c": "192.0.2.0", "a/d": "192.0.2.1"}, pass()); diff != "" {
		t.Fatalf("steady state (-want +got):\n%s", diff)
	}
}

func TestPoolStatus(t *testing.T) {
	pools := []*v1alpha1.ServiceAddressPool{
		sap("big", 0, "2001:db8::/64", "2001:db8:1::/64", "192.0.2.0/30"),
		sap("overlap", 1, "192.0.2.2/31"),
		sap("pods", 2, "10.42.0.0/24"),
		sap("full", 3, "198.51.100.7/32"),
		sap("invalid", 4, "198.51.100.9/24"),
	}
	pods := []PodPool{{Owner: "NodeConfig n1", Prefix: netip.MustParsePrefix("10.42.0.0/25")}}
	svcs := []Service{svc("a/a", 1, fams(prefer, v6, v4)), svc("a/b", 2, inPool("full")), svc("a/c", 3, inPool("full"))}
	p := Compute(Input{Pools: pools, PodPools: pods, Services: svcs, Now: epoch})
	type row struct {
		V6, V4         *v1alpha1.AddressUsage
		Status, Reason string
	}
	rows := map[string]row{}
	for name, st := range p.Pools {
		c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
		if c == nil || st.ObservedGeneration != 1 || c.ObservedGeneration != 1 {
			t.Fatalf("%s: no Ready condition for generation 1: %+v", name, st)
		}
		rows[name] = row{st.IPv6, st.IPv4, string(c.Status), c.Reason}
	}
	want := map[string]row{
		"big":     {&v1alpha1.AddressUsage{Total: MaxTotal, Used: 1, Free: MaxTotal - 1}, &v1alpha1.AddressUsage{Total: 4, Used: 1, Free: 3}, "True", v1alpha1.ReasonAssignable},
		"overlap": {nil, &v1alpha1.AddressUsage{Total: 2, Free: 2}, "False", v1alpha1.ReasonOverlap},
		"pods":    {nil, &v1alpha1.AddressUsage{Total: 256, Free: 256}, "False", v1alpha1.ReasonNodePoolOverlap},
		"full":    {nil, &v1alpha1.AddressUsage{Total: 1, Used: 1}, "False", v1alpha1.ReasonExhausted},
		"invalid": {nil, nil, "False", "Invalid"},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("pool status (-want +got):\n%s", diff)
	}
	for _, name := range []string{"overlap", "pods", "invalid"} {
		t.Logf("%s: %s", name, meta.FindStatusCondition(p.Pools[name].Conditions, v1alpha1.ConditionReady).Message)
	}
	if m := meta.FindStatusCondition(p.Pools["invalid"].Conditions, v1alpha1.ConditionReady).Message; !strings.Contains(m, `spec.cidrs[0] "198.51.100.9/24": host bits set`) {
		t.Errorf("invalid pool's message %q does not name the field and value", m)
	}
	// A condition that holds keeps its transition time.
	pools[0].Status = p.Pools["big"]
	later := Compute(Input{Pools: pools, PodPools: pods, Services: svcs, Now: epoch.Add(time.Hour)})
	if c := meta.FindStatusCondition(later.Pools["big"].Conditions, v1alpha1.ConditionReady); !c.LastTransitionTime.Time.Equal(epoch) {
		t.Errorf("transition time moved to %s", c.LastTransitionTime)
	}
}

func TestParseIPs(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "192.0.2.1", want: "192.0.2.1"},
		{in: "2001:db8::1,192.0.2.1", want: "2001:db8::1 192.0.2.1"},
		{in: " 192.0.2.1 , 2001:db8::1 ", want: "192.0.2.1 2001:db8::1"},
		{in: "", err: "no address"},
		{in: "192.0.2.1,", err: "an empty entry"},
		{in: "192.0.2.1,192.0.2.2", err: "two IPv4 addresses"},
		{in: "2001:db8::1,2001:db8::2", err: "two IPv6 addresses"},
		{in: "192.0.2.1/32", err: "not an IP address"},
		{in: "fe80::1%eth0", err: "has a zone"},
		{in: "::ffff:192.0.2.1", err: "IPv4-mapped"},
		{in: "224.0.0.1", err: "not a unicast address"},
		{in: "127.0.0.1", err: "not a unicast address"},
		{in: "0.0.0.0", err: "not a unicast address"},
		{in: "192.0.2.1 192.0.2.2", err: "not an IP address"},
	} {
		as, err := ParseIPs(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), fmt.Sprintf("annotation %s %q", v1alpha1.AnnotationLoadBalancerIPs, tc.in)) {
				t.Errorf("ParseIPs(%q) = %v, %v; want an error naming the annotation, the value and %q", tc.in, as, err, tc.err)
			}
			continue
		}
		var s []string
		for _, a := range as {
			s = append(s, a.String())
		}
		if err != nil || strings.Join(s, " ") != tc.want {
			t.Errorf("ParseIPs(%q) = %v, %v; want %s", tc.in, s, err, tc.want)
		}
	}
}

func TestFromService(t *testing.T) {
	cls, other, dual := v1alpha1.LoadBalancerClass, "example.com/lb", prefer
	base := func() *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "web", Labels: map[string]string{"app": "web"},
				Annotations: map[string]string{v1alpha1.AnnotationAddressPool: "p"}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilyPolicy: &dual, IPFamilies: []corev1.IPFamily{v6, v4}},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
				{IP: "2001:db8:5::1"}, {Hostname: "lb.example.com"}, {IP: "192.0.2.1"}}}},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*corev1.Service)
		served bool
		ips    string // "field=value"
	}{
		{"no-class", func(*corev1.Service) {}, true, ""},
		{"our-class", func(s *corev1.Service) { s.Spec.LoadBalancerClass = &cls }, true, ""},
		{"other-class", func(s *corev1.Service) { s.Spec.LoadBalancerClass = &other }, false, ""},
		{"node-port", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }, false, ""},
		{"annotation", func(s *corev1.Service) { s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = "192.0.2.9" }, true, annotationIPs + "=192.0.2.9"},
		{"spec-field", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "192.0.2.8" }, true, "spec.loadBalancerIP=192.0.2.8"},
		{"annotation-over-spec", func(s *corev1.Service) {
			s.Spec.LoadBalancerIP = "192.0.2.8"
			s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = "192.0.2.9"
		}, true, annotationIPs + "=192.0.2.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := base()
			tc.change(k)
			s := FromService(k)
			if s.Served() != tc.served {
				t.Errorf("served %v, want %v", s.Served(), tc.served)
			}
			var ips string
			if s.HasIPs {
				ips = s.ipsField() + "=" + s.IPs
			}
			if ips != tc.ips {
				t.Errorf("request %q, want %q", ips, tc.ips)
			}
			if s.Pool != "p" || s.Labels["app"] != "web" || !slices.Equal(s.families(), []corev1.IPFamily{v6, v4}) ||
				!slices.Equal(s.Ingress, []netip.Addr{netip.MustParseAddr("2001:db8:5::1"), netip.MustParseAddr("192.0.2.1")}) {
				t.Errorf("FromService = %+v", s)
			}
		})
	}
	// spec.loadBalancerIP errors name the field.
	s := FromService(func() *corev1.Service { k := base(); k.Spec.LoadBalancerIP = "10.0.0.1/8"; return k }())
	p := Compute(Input{Pools: []*v1alpha1.ServiceAddressPool{sap("p", 0, "192.0.2.0/24")}, Services: []Service{s}, Now: epoch})
	if len(p.Events) != 1 || p.Events[0].Reason != ReasonInvalidIPs || !strings.HasPrefix(p.Events[0].Message, `spec.loadBalancerIP "10.0.0.1/8"`) {
		t.Errorf("events %+v, want one %s naming spec.loadBalancerIP", p.Events, ReasonInvalidIPs)
	}
}

// A pool overlapping the cluster's Service range (a ServiceCIDR) hands out
// nothing: every agent refuses to announce an address inside it, and
// kube-proxy owns it for ClusterIPs.
func TestPoolInServiceRange(t *testing.T) {
	pools := []*v1alpha1.ServiceAddressPool{sap("clusterips", 0, "10.96.0.0/24"), sap("ok", 1, "192.0.2.0/30")}
	svcCIDRs := []ServiceCIDR{{Name: "kubernetes", Prefix: netip.MustParsePrefix("10.96.0.0/12")}}
	p := Compute(Input{Pools: pools, ServiceCIDRs: svcCIDRs, Services: []Service{svc("a/a", 0)}, Now: epoch})
	c := meta.FindStatusCondition(p.Pools["clusterips"].Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonServiceCIDROverlap ||
		!strings.Contains(c.Message, "10.96.0.0/24") || !strings.Contains(c.Message, "ServiceCIDR kubernetes (10.96.0.0/12)") {
		t.Errorf("condition %+v, want False %s naming the range and the ServiceCIDR", c, v1alpha1.ReasonServiceCIDROverlap)
	}
	if got := p.Services[0].Addrs; len(got) != 1 || got[0] != netip.MustParseAddr("192.0.2.0") {
		t.Errorf("a/a got %v, want 192.0.2.0 of pool ok", got)
	}
}
