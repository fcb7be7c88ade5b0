package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Limits the CRD schema enforces. The markers below must repeat them as
// literals (controller-gen reads no constants); TestSchemaLimits checks the
// generated CRD against these values, and pkg/model enforces the same ones,
// so a NodeConfig the API server accepts is one the agent can use unless a
// check needs more than one object (which the Accepted condition reports).
const (
	// MaxPool6PrefixLength is the longest IPv6 pool: the IID algorithms keep
	// a collision nibble and need a host part below it.
	MaxPool6PrefixLength = 120
	// MaxPool4PrefixLength is the longest IPv4 pool: network, gateway, one
	// pod and broadcast.
	MaxPool4PrefixLength = 30
	// MaxBGPPeers bounds spec.bgp.peers (and so the cost of its CEL rules).
	MaxBGPPeers = 32
	// MaxAllowedCIDRs bounds spec.anycast.allowedCIDRs.
	MaxAllowedCIDRs = 64
	// MaxConditions bounds status.conditions.
	MaxConditions = 8
	// MaxIPLength is the longest textual IP address: an IPv6 address with an
	// embedded dotted quad, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".
	MaxIPLength = 45
	// MaxCIDRLength is MaxIPLength plus "/128".
	MaxCIDRLength = MaxIPLength + 4
	// ASTrans is AS 23456 (RFC 6793), the placeholder 2-byte speakers see
	// for a 4-byte ASN; configuring it as a real ASN breaks sessions.
	ASTrans = 23456
)

// Condition types and reasons the agent sets on status.conditions.
const (
	// ConditionAccepted is True when the agent uses the NodeConfig, False
	// (with ReasonInvalid and the agent's error as message) when the agent
	// rejects a NodeConfig the schema accepted.
	ConditionAccepted = "Accepted"
	// ReasonAccepted is the reason of a True Accepted condition.
	ReasonAccepted = "Accepted"
	// ReasonInvalid is the reason of a False Accepted condition.
	ReasonInvalid = "Invalid"
)

// NodeConfig is the configuration of one node; its name is the Node's name.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=nc,categories=flock
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="CIDR6",type=string,JSONPath=`.spec.cidr6`
// +kubebuilder:printcolumn:name="CIDR4",type=string,JSONPath=`.spec.cidr4`
// +kubebuilder:printcolumn:name="ASN",type=integer,JSONPath=`.spec.bgp.asn`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what the operator asks of the node.
	// +required
	Spec NodeConfigSpec `json:"spec"`
	// Status is what the node's agent reports back.
	// +optional
	Status NodeConfigStatus `json:"status,omitempty"`
}

// NodeConfigList is a list of NodeConfigs.
//
// +kubebuilder:object:root=true
type NodeConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the NodeConfigs.
	Items []NodeConfig `json:"items"`
}

// NodeConfigSpec is what the operator asks of the node.
//
// +kubebuilder:validation:XValidation:rule="has(self.cidr6) || has(self.cidr4)",message="at least one of spec.cidr6 and spec.cidr4 must be set"
type NodeConfigSpec struct {
	// CIDR6 is the node's IPv6 pod pool, e.g. 2001:db8:42:1::/64: an IPv6
	// unicast network address (no host bits set), at most /120.
	// +optional
	// +kubebuilder:validation:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr6 must be a CIDR such as 2001:db8:42:1::/64"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).ip().family() == 6",message="cidr6 must be an IPv6 CIDR"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).masked() == cidr(self)",message="cidr6 must have no host bits set (give the network address)"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).prefixLength() <= 120",message="cidr6 must be at most /120"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).ip().isGlobalUnicast()",message="cidr6 must be a unicast range (not link-local, loopback, multicast or unspecified)"
	CIDR6 string `json:"cidr6,omitempty"`
	// CIDR4 is the node's IPv4 pod pool, e.g. 10.42.1.0/24: an IPv4 unicast
	// network address (no host bits set), at most /30.
	// +optional
	// +kubebuilder:validation:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr4 must be a CIDR such as 10.42.1.0/24"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).ip().family() == 4",message="cidr4 must be an IPv4 CIDR"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).masked() == cidr(self)",message="cidr4 must have no host bits set (give the network address)"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).prefixLength() <= 30",message="cidr4 must be at most /30"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).ip().isGlobalUnicast()",message="cidr4 must be a unicast range (not link-local, loopback, multicast or unspecified)"
	CIDR4 string `json:"cidr4,omitempty"`
	// Defaults are the families a pod gets when its annotations say nothing.
	// Omitted fields fall back to the built-in default: both families.
	// +optional
	Defaults *FamilyDefaults `json:"defaults,omitempty"`
	// BGP describes the node's BGP speaker and its peers.
	// +optional
	BGP *BGPSpec `json:"bgp,omitempty"`
	// Anycast restricts which anycast addresses pods on this node may serve.
	// +optional
	Anycast *AnycastSpec `json:"anycast,omitempty"`
}

// FamilyDefaults says which address families a pod gets by default.
type FamilyDefaults struct {
	// IPv6 gives pods an IPv6 address unless they opt out.
	// +optional
	IPv6 *bool `json:"ipv6,omitempty"`
	// IPv4 gives pods an IPv4 address unless they opt out.
	// +optional
	IPv4 *bool `json:"ipv4,omitempty"`
}

// BGPSpec is the node's BGP speaker.
type BGPSpec struct {
	// ASN is the node's local autonomous system number: 1 to 4294967295,
	// not 23456 (AS_TRANS).
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	// +kubebuilder:validation:XValidation:rule="self != 23456",message="asn must not be 23456 (AS_TRANS)"
	ASN uint32 `json:"asn"`
	// Peers are the node's BGP neighbours, at most one per address.
	// +optional
	// +listType=map
	// +listMapKey=address
	// +kubebuilder:validation:MaxItems=32
	Peers []BGPPeer `json:"peers,omitempty"`
}

// BGPPeer is one BGP neighbour.
type BGPPeer struct {
	// Address is the neighbour's IPv6 or IPv4 unicast address in canonical
	// form (lower case, zeros compressed: 2001:db8::1), so that two spellings
	// of one address cannot both be listed. Link-local neighbours are not
	// supported: they would need an interface.
	// +required
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="address must be an IP address such as 2001:db8::1 or 192.0.2.1"
	// +kubebuilder:validation:XValidation:rule="!isIP(self) || ip(self).isGlobalUnicast()",message="address must be a unicast address (not link-local, loopback, multicast or unspecified)"
	// +kubebuilder:validation:XValidation:rule="!isIP(self) || ip.isCanonical(self)",message="address must be in canonical form (lower case, zeros compressed, e.g. 2001:db8::1)"
	Address string `json:"address"`
	// ASN is the neighbour's autonomous system number: 1 to 4294967295, not
	// 23456 (AS_TRANS).
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	// +kubebuilder:validation:XValidation:rule="self != 23456",message="asn must not be 23456 (AS_TRANS)"
	ASN uint32 `json:"asn"`
}

// AnycastSpec constrains per-pod anycast addresses.
type AnycastSpec struct {
	// AllowedCIDRs, when set, are the only ranges anycast addresses may come
	// from: IPv6 or IPv4 network addresses (no host bits set), each listed
	// once.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=49
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self)",message="allowedCIDRs entries must be CIDRs such as 2001:db8:ffff::/48"
	// +kubebuilder:validation:items:XValidation:rule="!isCIDR(self) || cidr(self).masked() == cidr(self)",message="allowedCIDRs entries must have no host bits set (give the network address)"
	AllowedCIDRs []string `json:"allowedCIDRs,omitempty"`
}

// NodeConfigStatus is what the agent reports back.
type NodeConfigStatus struct {
	// ObservedGeneration is the metadata.generation of the spec the agent
	// last evaluated; the conditions describe that generation.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions report whether the agent accepted the configuration
	// (type Accepted).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
