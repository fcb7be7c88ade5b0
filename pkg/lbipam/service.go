package lbipam

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// Service is what the decision needs of a Service (FromService builds it).
type Service struct {
	Namespace, Name string
	UID             types.UID
	Created         time.Time
	Labels          map[string]string
	// LoadBalancer: spec.type is LoadBalancer. Class is
	// spec.loadBalancerClass, "" when unset.
	LoadBalancer bool
	Class        string
	// Policy and Families are spec.ipFamilyPolicy and spec.ipFamilies (the
	// API server fills both in; the first family is the primary).
	Policy   corev1.IPFamilyPolicy
	Families []corev1.IPFamily
	// IPs is the annotation flock.fritzlab.net/load-balancer-ips, HasIPs
	// whether it is set at all; IPsField is where IPs came from when not
	// from the annotation (spec.loadBalancerIP, which it replaces). Pool
	// is flock.fritzlab.net/address-pool.
	IPs      string
	HasIPs   bool
	IPsField string
	Pool     string
	// Ingress are the addresses in status.loadBalancer.ingress (entries
	// with only a hostname are left out).
	Ingress []netip.Addr
}

// Key is namespace/name.
func (s *Service) Key() string { return s.Namespace + "/" + s.Name }

// Served says whether flock assigns the Service's addresses: type
// LoadBalancer and no class, or flock's.
func (s *Service) Served() bool {
	return s.LoadBalancer && (s.Class == "" || s.Class == v1alpha1.LoadBalancerClass)
}

// FromService is the decision's view of a Service.
func FromService(svc *corev1.Service) Service {
	s := Service{
		Namespace: svc.Namespace, Name: svc.Name, UID: svc.UID, Created: svc.CreationTimestamp.Time,
		Labels:       svc.Labels,
		LoadBalancer: svc.Spec.Type == corev1.ServiceTypeLoadBalancer,
		Families:     svc.Spec.IPFamilies,
		Pool:         svc.Annotations[v1alpha1.AnnotationAddressPool],
	}
	if svc.Spec.LoadBalancerClass != nil {
		s.Class = *svc.Spec.LoadBalancerClass
	}
	if svc.Spec.IPFamilyPolicy != nil {
		s.Policy = *svc.Spec.IPFamilyPolicy
	}
	s.IPs, s.HasIPs = svc.Annotations[v1alpha1.AnnotationLoadBalancerIPs]
	if !s.HasIPs && svc.Spec.LoadBalancerIP != "" {
		// Deprecated, yet what a Service written for MetalLB or a cloud
		// may carry: honoured as the annotation would be, never ignored.
		s.IPs, s.HasIPs, s.IPsField = svc.Spec.LoadBalancerIP, true, "spec.loadBalancerIP"
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			s.Ingress = append(s.Ingress, a.Unmap())
		}
	}
	return s
}

// Family is an address's family as the Service API names it.
func Family(a netip.Addr) corev1.IPFamily {
	if a.Is4() {
		return corev1.IPv4Protocol
	}
	return corev1.IPv6Protocol
}

// ParseIPs parses the annotation flock.fritzlab.net/load-balancer-ips:
// one or two addresses, comma-separated (spaces around them allowed), at
// most one of each family, each a unicast address in its plain form (no
// zone, no IPv4-mapped IPv6). Errors name the annotation and the value.
func ParseIPs(v string) ([]netip.Addr, error) { return parseIPs(annotationIPs, v) }

var annotationIPs = "annotation " + v1alpha1.AnnotationLoadBalancerIPs

// ipsField names where the Service's requested addresses come from.
func (s *Service) ipsField() string {
	if s.IPsField != "" {
		return s.IPsField
	}
	return annotationIPs
}

func parseIPs(field, v string) ([]netip.Addr, error) {
	fail := func(format string, a ...any) ([]netip.Addr, error) {
		return nil, fmt.Errorf("%s %q: %s", field, v, fmt.Sprintf(format, a...))
	}
	if strings.TrimSpace(v) == "" {
		return fail("no address")
	}
	var out []netip.Addr
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		a, err := netip.ParseAddr(f)
		switch {
		case f == "":
			return fail("an empty entry")
		case err != nil:
			return fail("%q is not an IP address", f)
		case a.Zone() != "":
			return fail("%q has a zone", f)
		case a.Is4In6():
			return fail("%q is an IPv4-mapped IPv6 address: give the IPv4 address", f)
		case !a.IsGlobalUnicast():
			return fail("%q is not a unicast address (link-local, loopback, multicast or unspecified)", f)
		}
		for _, b := range out {
			if Family(b) == Family(a) {
				return fail("two %s addresses (%s, %s): at most one of each family", Family(a), b, a)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// families are the families the Service gets addresses of, primary first:
// kube-proxy serves an address only of a family the Service has a cluster
// IP of, so they are always among spec.ipFamilies.
func (s *Service) families() []corev1.IPFamily {
	var fams []corev1.IPFamily
	for _, f := range s.Families {
		if (f == corev1.IPv4Protocol || f == corev1.IPv6Protocol) && (len(fams) == 0 || fams[0] != f) {
			fams = append(fams, f)
		}
	}
	if len(fams) > 1 && (s.Policy == "" || s.Policy == corev1.IPFamilyPolicySingleStack) {
		fams = fams[:1]
	}
	return fams
}
