package lbipam

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/controlplane/controlplanetest"
	"github.com/fritzlab/flock/pkg/lbipam"
)

// Services get the pool's lowest free addresses in creation order; a
// Service asking for a taken address gets an Event and none; an exhausted
// pool is an Event and the pool's status; a deleted Service's address, and
// one whose type changed, go to the next Service.
func TestAssign(t *testing.T) {
	h := setup(t)
	const ns = "lb-assign"
	h.namespace(t, ns)
	h.createPool(t, "assign", ns, "2001:db8:77::/127", "198.51.100.0/30")
	metrics := freePort(t)
	h.StartReplica(t, "assign-a", "--metrics-addr", metrics)

	h.createService(t, ns, "one")
	h.waitIngress(t, ns, "one", "198.51.100.0")
	h.createService(t, ns, "dual", preferDual)
	h.waitIngress(t, ns, "dual", "198.51.100.1,2001:db8:77::")
	h.createService(t, ns, "asks", requestIPs("198.51.100.3"))
	h.waitIngress(t, ns, "asks", "198.51.100.3")
	msg := h.waitEvent(t, ns, "asks", lbipam.ReasonAssigned)
	if !strings.Contains(msg, "198.51.100.3 (pool assign)") {
		t.Errorf("Event %s says %q", lbipam.ReasonAssigned, msg)
	}

	h.createService(t, ns, "same", requestIPs("198.51.100.3"))
	msg = h.waitEvent(t, ns, "same", lbipam.ReasonAddressInUse)
	if !strings.Contains(msg, ns+"/asks") || !strings.Contains(msg, v1alpha1.AnnotationLoadBalancerIPs) {
		t.Errorf("Event %s says %q: want the holder and the annotation named", lbipam.ReasonAddressInUse, msg)
	}
	h.createService(t, ns, "auto")
	h.waitIngress(t, ns, "auto", "198.51.100.2")
	h.createService(t, ns, "waits")
	msg = h.waitEvent(t, ns, "waits", lbipam.ReasonPoolExhausted)
	if !strings.Contains(msg, "IPv4") || !strings.Contains(msg, "assign") {
		t.Errorf("Event %s says %q: want the family and the pool named", lbipam.ReasonPoolExhausted, msg)
	}
	if got := h.ingress(t, ns, "same"); got != "" {
		t.Errorf("the second Service asking for 198.51.100.3 has %q", got)
	}
	waitFor(t, 30*time.Second, "the pool's status", func() (bool, string) {
		p := h.pool(t, "assign")
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		ok := p.Status.IPv4 != nil && *p.Status.IPv4 == v1alpha1.AddressUsage{Total: 4, Used: 4, Free: 0} &&
			p.Status.IPv6 != nil && *p.Status.IPv6 == v1alpha1.AddressUsage{Total: 2, Used: 1, Free: 1} &&
			c != nil && c.Reason == v1alpha1.ReasonExhausted
		return ok, fmt.Sprintf("%+v %+v %+v", p.Status.IPv4, p.Status.IPv6, c)
	})

	waitFor(t, 30*time.Second, "flock_lb_addresses_assigned", func() (bool, string) {
		m := scrape(metrics)
		return strings.Contains(m, `flock_lb_addresses_assigned{family="ipv4",pool="assign"} 4`) &&
			strings.Contains(m, `flock_lb_addresses_assigned{family="ipv6",pool="assign"} 1`), m
	})

	// Deleting "one" frees 198.51.100.0 for the Service that waited.
	if err := h.cs.CoreV1().Services(ns).Delete(context.Background(), "one", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitIngress(t, ns, "waits", "198.51.100.0")

	// "auto" becomes a ClusterIP Service: its address is released and
	// goes to the next one.
	s, err := h.cs.CoreV1().Services(ns).Get(context.Background(), "auto", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.Type = corev1.ServiceTypeClusterIP
	for i := range s.Spec.Ports {
		s.Spec.Ports[i].NodePort = 0
	}
	s.Spec.AllocateLoadBalancerNodePorts = nil
	if _, err := h.cs.CoreV1().Services(ns).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// (The API server clears the status itself on a type change; the
	// controller would, too, finding a pool's address there.)
	h.waitIngress(t, ns, "auto", "")
	h.createService(t, ns, "next")
	h.waitIngress(t, ns, "next", "198.51.100.2")

	// Another class is left alone.
	other := "example.com/lb"
	h.createService(t, ns, "theirs", func(s *corev1.Service) { s.Spec.LoadBalancerClass = &other })
	time.Sleep(2 * time.Second)
	if got := h.ingress(t, ns, "theirs"); got != "" {
		t.Errorf("a Service of class %s got %q", other, got)
	}
	for name, want := range map[string]string{"dual": "198.51.100.1,2001:db8:77::", "asks": "198.51.100.3", "same": ""} {
		if got := h.ingress(t, ns, name); got != want {
			t.Errorf("%s has %q, want %q still", name, got, want)
		}
	}
}

// Two replicas; the leader is killed (SIGKILL: it never releases the
// Lease). The other takes over within the lease duration, assigns the
// next Service, and no Service's address changes.
func TestLeaderFailover(t *testing.T) {
	h := setup(t)
	const ns = "lb-failover"
	h.namespace(t, ns)
	h.createPool(t, "failover", ns, "2001:db8:78::/120", "203.0.113.0/24")
	replicas := map[string]*controlplanetest.Replica{
		"failover-a": h.StartReplica(t, "failover-a"),
		"failover-b": h.StartReplica(t, "failover-b"),
	}
	var first string
	waitFor(t, 30*time.Second, "a leader", func() (bool, string) {
		first = h.LeaseHolder() // an earlier test's replica until its lease expires
		return replicas[first] != nil, first
	})
	want := map[string]string{}
	for i := range 6 {
		name := fmt.Sprintf("svc-%d", i)
		h.createService(t, ns, name, preferDual)
		want[name] = fmt.Sprintf("203.0.113.%d,2001:db8:78::%x", i, i)
		if i == 0 {
			want[name] = "203.0.113.0,2001:db8:78::"
		}
	}
	for name, w := range want {
		h.waitIngress(t, ns, name, w)
	}
	replicas[first].Kill()
	killed := time.Now()
	var second string
	// The killed leader never released the Lease: the other replica waits
	// out the lease duration, then takes it at a retry. On a loaded
	// machine that retry comes late, so the bound is twice the lease.
	took := waitFor(t, 2*controlplanetest.LeaseDuration, "another leader", func() (bool, string) {
		second = h.LeaseHolder()
		return second != first && replicas[second] != nil, second
	})
	t.Logf("%s took over %s after the leader was killed (lease %s)", second, took.Round(time.Millisecond), controlplanetest.LeaseDuration)
	h.createService(t, ns, "after", preferDual)
	h.waitIngress(t, ns, "after", "203.0.113.6,2001:db8:78::6")
	t.Logf("the new leader assigned a Service %s after the kill", time.Since(killed).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // a pass or two more of the new leader
	for name, w := range want {
		if got := h.ingress(t, ns, name); got != w {
			t.Errorf("%s: %q after the failover, had %q", name, got, w)
		}
	}
}

// A pool overlapping the cluster's Service range (the ServiceCIDR the API
// server made from --service-cluster-ip-range) hands out nothing, and its
// Ready condition says why.
func TestPoolInServiceRange(t *testing.T) {
	h := setup(t)
	const ns = "lb-svcrange"
	h.namespace(t, ns)
	h.createPool(t, "svcrange", ns, controlplane.ServiceCIDR4)
	h.StartReplica(t, "svcrange-a")
	waitFor(t, 30*time.Second, "pool svcrange's Ready condition", func() (bool, string) {
		c := meta.FindStatusCondition(h.pool(t, "svcrange").Status.Conditions, v1alpha1.ConditionReady)
		if c == nil {
			return false, "none"
		}
		return c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonServiceCIDROverlap, c.Reason + ": " + c.Message
	})
	h.createService(t, ns, "in-range")
	h.waitEvent(t, ns, "in-range", lbipam.ReasonNoPool)
	if got := h.ingress(t, ns, "in-range"); got != "" {
		t.Errorf("in-range got %q from a pool inside the Service range", got)
	}
}
