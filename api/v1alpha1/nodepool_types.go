package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Labels and annotations flock-controller reads and writes on NodeConfigs.
const (
	// LabelNodePool names the NodePool a NodeConfig was made from. The
	// controller creates, updates and deletes only NodeConfigs that carry it.
	LabelNodePool = "flock.fritzlab.net/node-pool"
	// AnnotationManaged set to "false" on a NodeConfig hands it to the
	// operator: the controller never changes or deletes it again, and still
	// counts its pools as taken.
	AnnotationManaged = "flock.fritzlab.net/managed"
)

// Limits of a NodePool (repeated as literals in the markers below).
const (
	// DefaultBlockSize6 and DefaultBlockSize4 are the per-node prefix
	// lengths when a NodePool does not say.
	DefaultBlockSize6 = 64
	DefaultBlockSize4 = 24
	// MaxBlockBits bounds blockSize minus the pool's prefix length: at most
	// 2^24 blocks per family, so counts fit and a scan stays cheap.
	MaxBlockBits = 24
)

// Condition types and reasons flock-controller sets on a NodePool.
const (
	// ConditionReady is True when the pool is valid, overlaps no older
	// pool and has a block for every Node it selects.
	ConditionReady = "Ready"
	// ReasonAllocated: every selected Node has its NodeConfig (True).
	ReasonAllocated = "Allocated"
	// ReasonExhausted: a selected Node got no block, the pool is full (False).
	ReasonExhausted = "Exhausted"
	// ReasonOverlap: the pool's ranges overlap an older pool's; it hands out
	// nothing until fixed (False).
	ReasonOverlap = "Overlap"
)

// NodePool makes the NodeConfig of every Node it selects: each Node gets
// the next free per-node blocks of the pool's ranges and the pool's
// defaults, BGP and anycast settings. flock-controller writes the
// NodeConfigs; an operator may take one over (annotation
// flock.fritzlab.net/managed: "false").
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=np,categories=flock
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="CIDR6",type=string,JSONPath=`.spec.cidr6`
// +kubebuilder:printcolumn:name="CIDR4",type=string,JSONPath=`.spec.cidr4`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodes`
// +kubebuilder:printcolumn:name="Free6",type=integer,JSONPath=`.status.ipv6.free`
// +kubebuilder:printcolumn:name="Free4",type=integer,JSONPath=`.status.ipv4.free`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
type NodePool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the pool the operator defines.
	// +required
	Spec NodePoolSpec `json:"spec"`
	// Status is what flock-controller reports.
	// +optional
	Status NodePoolStatus `json:"status,omitempty"`
}

// NodePoolList is a list of NodePools.
//
// +kubebuilder:object:root=true
type NodePoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the NodePools.
	Items []NodePool `json:"items"`
}

// NodePoolSpec is a cluster range per family carved into per-node blocks,
// and the rest of the NodeConfig every selected Node gets.
//
// +kubebuilder:validation:XValidation:rule="has(self.cidr6) || has(self.cidr4) || (has(self.ipv4FromPodCIDRs) && self.ipv4FromPodCIDRs)",message="at least one of spec.cidr6, spec.cidr4 and spec.ipv4FromPodCIDRs must be set"
// +kubebuilder:validation:XValidation:rule="!(has(self.cidr4) && has(self.ipv4FromPodCIDRs) && self.ipv4FromPodCIDRs)",message="spec.cidr4 and spec.ipv4FromPodCIDRs exclude each other"
// +kubebuilder:validation:XValidation:rule="!has(self.cidr6) || !isCIDR(self.cidr6) || (self.blockSize6 >= cidr(self.cidr6).prefixLength() && self.blockSize6 - cidr(self.cidr6).prefixLength() <= 24)",message="spec.blockSize6 must be at least the prefix length of spec.cidr6 and at most 24 more"
// +kubebuilder:validation:XValidation:rule="!has(self.cidr4) || !isCIDR(self.cidr4) || (self.blockSize4 >= cidr(self.cidr4).prefixLength() && self.blockSize4 - cidr(self.cidr4).prefixLength() <= 24)",message="spec.blockSize4 must be at least the prefix length of spec.cidr4 and at most 24 more"
// +kubebuilder:validation:XValidation:rule="!has(self.bgp) || !has(self.bgp.routerID)",message="spec.bgp.routerID is per node: leave it out of a NodePool (the agent derives it)"
type NodePoolSpec struct {
	// NodeSelector selects the Nodes the pool serves; omitted, every Node.
	// A Node two pools select is served by the older one (then the one
	// whose name sorts first). One pool per rack, selecting the rack's
	// label, gives each rack its own BGP peers.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	// CIDR6 is the cluster's IPv6 range, e.g. 2001:db8:42::/48, carved into
	// per-node prefixes of length blockSize6.
	// +optional
	// +kubebuilder:validation:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr6 must be a CIDR such as 2001:db8:42::/48"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).ip().family() == 6",message="cidr6 must be an IPv6 CIDR"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).masked() == cidr(self)",message="cidr6 must have no host bits set (give the network address)"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).ip().isGlobalUnicast()",message="cidr6 must be a unicast range (not link-local, loopback, multicast or unspecified)"
	CIDR6 string `json:"cidr6,omitempty"`
	// BlockSize6 is the prefix length of each node's IPv6 pool: 1 to 120,
	// default 64.
	// +optional
	// +kubebuilder:default=64
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=120
	BlockSize6 int32 `json:"blockSize6,omitempty"`
	// CIDR4 is the cluster's IPv4 range, e.g. 10.42.0.0/16, carved into
	// per-node blocks of length blockSize4.
	// +optional
	// +kubebuilder:validation:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="cidr4 must be a CIDR such as 10.42.0.0/16"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).ip().family() == 4",message="cidr4 must be an IPv4 CIDR"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).masked() == cidr(self)",message="cidr4 must have no host bits set (give the network address)"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).ip().isGlobalUnicast()",message="cidr4 must be a unicast range (not link-local, loopback, multicast or unspecified)"
	CIDR4 string `json:"cidr4,omitempty"`
	// BlockSize4 is the prefix length of each node's IPv4 pool: 1 to 30,
	// default 24.
	// +optional
	// +kubebuilder:default=24
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=30
	BlockSize4 int32 `json:"blockSize4,omitempty"`
	// IPv4FromPodCIDRs takes each node's IPv4 pool from its Node's
	// spec.podCIDRs (what kube-controller-manager --allocate-node-cidrs
	// assigns) instead of carving cidr4, so a cluster keeps the addresses
	// it has. A Node without an IPv4 podCIDR waits for one.
	// +optional
	IPv4FromPodCIDRs bool `json:"ipv4FromPodCIDRs,omitempty"`
	// Defaults become each NodeConfig's spec.defaults.
	// +optional
	Defaults *FamilyDefaults `json:"defaults,omitempty"`
	// BGP becomes each NodeConfig's spec.bgp (without routerID, which the
	// agent derives per node). A peer's address may be
	// default-gateway-ipv6 or default-gateway-ipv4: each node's agent peers
	// with its own default gateway of that family.
	// +optional
	BGP *BGPSpec `json:"bgp,omitempty"`
	// Anycast becomes each NodeConfig's spec.anycast.
	// +optional
	Anycast *AnycastSpec `json:"anycast,omitempty"`
}

// NodePoolStatus is what flock-controller reports about a pool.
type NodePoolStatus struct {
	// ObservedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Nodes is how many Nodes the pool serves.
	// +optional
	Nodes int32 `json:"nodes,omitempty"`
	// IPv6 counts the blocks of spec.cidr6; absent without one.
	// +optional
	IPv6 *BlockUsage `json:"ipv6,omitempty"`
	// IPv4 counts the blocks of spec.cidr4; absent without one.
	// +optional
	IPv4 *BlockUsage `json:"ipv4,omitempty"`
	// Conditions: Ready (reasons Allocated, Exhausted, Overlap, Invalid).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BlockUsage counts one family's per-node blocks.
type BlockUsage struct {
	// Total is how many blocks the range holds.
	Total int64 `json:"total"`
	// Used is how many are some NodeConfig's pool (the controller's or an
	// operator's).
	Used int64 `json:"used"`
	// Free is Total minus Used.
	Free int64 `json:"free"`
}
