package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// What flock reads on Services of type LoadBalancer.
const (
	// LoadBalancerClass is the spec.loadBalancerClass flock serves. A
	// Service without a class is served too; one with another class is
	// left to its own implementation.
	LoadBalancerClass = "flock.fritzlab.net/bgp"
	// AnnotationLoadBalancerIPs on a Service asks for exact addresses, one
	// per family at most, comma-separated ("2001:db8:5::10,192.0.2.10"):
	// the successor of the deprecated spec.loadBalancerIP. Each must be in
	// a ServiceAddressPool the Service may use (autoAssign does not matter).
	AnnotationLoadBalancerIPs = "flock.fritzlab.net/load-balancer-ips"
	// AnnotationAddressPool on a Service names the ServiceAddressPool to
	// take its addresses from, instead of any pool with autoAssign.
	AnnotationAddressPool = "flock.fritzlab.net/address-pool"
)

// Limits of a ServiceAddressPool (repeated as literals in the markers).
const (
	// MaxServiceCIDRs bounds spec.cidrs.
	MaxServiceCIDRs = 16
)

// Condition reasons flock-controller sets on a ServiceAddressPool's Ready
// condition (type ConditionReady), besides ReasonOverlap and
// ReasonExhausted of the NodePool.
const (
	// ReasonAssignable: the pool is valid and hands out addresses (True).
	ReasonAssignable = "Assignable"
	// ReasonNodePoolOverlap: a range overlaps a node's pod pool; the pool
	// hands out nothing until fixed (False).
	ReasonNodePoolOverlap = "NodePoolOverlap"
	// ReasonServiceCIDROverlap: a range overlaps one of the cluster's
	// Service ranges (a ServiceCIDR, --service-cluster-ip-range), where
	// kube-proxy serves ClusterIPs and no agent announces an address; the
	// pool hands out nothing until fixed (False).
	ReasonServiceCIDROverlap = "ServiceCIDROverlap"
)

// ServiceAddressPool is a set of addresses flock-controller assigns to
// Services of type LoadBalancer (status.loadBalancer.ingress); every node's
// agent announces a Service's addresses over BGP while the node serves it:
// with externalTrafficPolicy Local, only while the node has a Ready
// endpoint of the Service; with Cluster, while the node is Ready.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=sap,categories=flock
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="CIDRs",type=string,JSONPath=`.spec.cidrs`
// +kubebuilder:printcolumn:name="Auto",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="Used6",type=integer,JSONPath=`.status.ipv6.used`
// +kubebuilder:printcolumn:name="Used4",type=integer,JSONPath=`.status.ipv4.used`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceAddressPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the pool the operator defines.
	// +required
	Spec ServiceAddressPoolSpec `json:"spec"`
	// Status is what flock-controller reports.
	// +optional
	Status ServiceAddressPoolStatus `json:"status,omitempty"`
}

// ServiceAddressPoolList is a list of ServiceAddressPools.
//
// +kubebuilder:object:root=true
type ServiceAddressPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the ServiceAddressPools.
	Items []ServiceAddressPool `json:"items"`
}

// ServiceAddressPoolSpec is where Service addresses come from, who may have
// them, and how the routers see them.
type ServiceAddressPoolSpec struct {
	// CIDRs are the pool's ranges, of either family or both, e.g.
	// 2001:db8:5::/112 and 192.0.2.0/28. Every address of a range is
	// assignable (a Service address is a /128 or /32 route, never a
	// subnet). Two ranges of the pool may not overlap; ranges of two
	// pools may (the older pool keeps them, the younger hands out
	// nothing), nor may a range overlap a node's pod pool (the pool hands
	// out nothing).
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self)",message="cidrs entries must be CIDRs such as 2001:db8:5::/112 or 192.0.2.0/28"
	// +kubebuilder:validation:items:XValidation:rule="!isCIDR(self) || cidr(self).masked() == cidr(self)",message="cidrs entries must have no host bits set (give the network address)"
	// +kubebuilder:validation:items:XValidation:rule="!isCIDR(self) || cidr(self).ip().isGlobalUnicast()",message="cidrs entries must be unicast ranges (not link-local, loopback, multicast or unspecified)"
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.all(b, a == b || !isCIDR(a) || !isCIDR(b) || !cidr(a).containsCIDR(cidr(b))))",message="cidrs entries must not overlap each other"
	CIDRs []string `json:"cidrs"`
	// AutoAssign lets the controller take addresses from this pool for
	// Services that name no pool and ask for no address; false keeps the
	// pool for Services that ask for it (annotation
	// flock.fritzlab.net/address-pool or load-balancer-ips). Default true.
	// +optional
	// +kubebuilder:default=true
	AutoAssign *bool `json:"autoAssign,omitempty"`
	// ServiceSelector, when set, limits the pool to Services whose labels
	// it selects.
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`
	// NamespaceSelector, when set, limits the pool to Services in
	// namespaces whose labels it selects.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// Communities are standard BGP communities (ASN:value, each 0 to
	// 65535) added to the routes of this pool's addresses, besides the
	// peer's own.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=11
	// +kubebuilder:validation:items:Pattern=`^\d{1,5}:\d{1,5}$`
	// +kubebuilder:validation:items:XValidation:rule="self.split(':').all(x, int(x) <= 65535)",message="communities entries must be ASN:value with both at most 65535"
	Communities []string `json:"communities,omitempty"`
	// LargeCommunities are large BGP communities (global:data1:data2, each
	// 0 to 4294967295) added to the routes of this pool's addresses.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=32
	// +kubebuilder:validation:items:Pattern=`^\d{1,10}:\d{1,10}:\d{1,10}$`
	// +kubebuilder:validation:items:XValidation:rule="self.split(':').all(x, int(x) <= 4294967295)",message="largeCommunities entries must be global:data1:data2 with each at most 4294967295"
	LargeCommunities []string `json:"largeCommunities,omitempty"`
}

// ServiceAddressPoolStatus is what flock-controller reports about a pool.
type ServiceAddressPoolStatus struct {
	// ObservedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// IPv6 counts the pool's IPv6 addresses; absent without an IPv6 range.
	// +optional
	IPv6 *AddressUsage `json:"ipv6,omitempty"`
	// IPv4 counts the pool's IPv4 addresses; absent without an IPv4 range.
	// +optional
	IPv4 *AddressUsage `json:"ipv4,omitempty"`
	// Conditions: Ready (reasons Assignable, Exhausted, Overlap,
	// NodePoolOverlap, ServiceCIDROverlap).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AddressUsage counts one family's addresses of a ServiceAddressPool.
type AddressUsage struct {
	// Total is how many addresses the ranges hold, saturated at 2^62.
	Total int64 `json:"total"`
	// Used is how many are assigned to Services.
	Used int64 `json:"used"`
	// Free is Total minus Used.
	Free int64 `json:"free"`
}
