package lab

import (
	"net/netip"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// The lab's ServiceAddressPool: the addresses flock-controller gives
// Services of type LoadBalancer, outside every pod pool, anycast range and
// Service CIDR of the lab (2001:db8:1b::/112 and TEST-NET-3's first 16).
var (
	LabServices6 = netip.MustParsePrefix("2001:db8:1b::/112")
	LabServices4 = netip.MustParsePrefix("203.0.113.0/28")
)

// ServicePoolName is the lab's ServiceAddressPool.
const ServicePoolName = "lab"

// ServiceAddressPool returns the lab's ServiceAddressPool.
func ServiceAddressPool() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.SchemeGroupVersion.String(),
		"kind":       v1alpha1.ServiceAddressPoolKind,
		"metadata":   map[string]any{"name": ServicePoolName},
		"spec": map[string]any{
			"cidrs": []any{LabServices6.String(), LabServices4.String()},
		},
	}}
}
