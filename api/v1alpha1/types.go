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
	// MinHoldTime and MaxHoldTime bound a peer's holdTime (RFC 4271: 0 or
	// at least 3 seconds; 0 here means BIRD's default, 240 s).
	MinHoldTime = 3
	MaxHoldTime = 65535
	// MaxRestartTime is the longest graceful restart time: a 12-bit field
	// of the BGP capability (RFC 4724).
	MaxRestartTime = 4095
	// MaxMultihop is the largest TTL of a multihop session.
	MaxMultihop = 255
	// MaxCommunities bounds a peer's communities and largeCommunities each.
	MaxCommunities = 16
	// MaxSecretNameLength is the longest Secret name (a DNS subdomain);
	// MaxSecretKeyLength the longest key of its data.
	MaxSecretNameLength = 253
	MaxSecretKeyLength  = 253
	// MaxNamespaceLength is the longest namespace name (a DNS label).
	MaxNamespaceLength = 63
)

// The Secrets the agent reads: in one namespace of flock's own, and only
// those labelled for it. RBAC grants GET on every Secret of that namespace
// (it cannot select by label); the label keeps the agent from writing any
// other Secret someone put there (a Helm release, a token) to the host.
const (
	// DefaultNamespace is where deploy/ installs flock, and the namespace
	// of the BGP password Secrets unless the agent is told otherwise.
	DefaultNamespace = "flock-system"
	// LabelBGPPassword must be "true" on a Secret a passwordSecretRef names.
	LabelBGPPassword = "flock.fritzlab.net/bgp-password"
)

// Condition types and reasons the agent sets on status.conditions.
const (
	// ConditionAccepted is True when the agent uses the NodeConfig, False
	// (with ReasonInvalid and the agent's error as message) when the agent
	// rejects a NodeConfig the schema accepted.
	ConditionAccepted = "Accepted"
	// ReasonAccepted is the reason of a True Accepted condition.
	ReasonAccepted = "Accepted"
	// ReasonInvalid is the reason of a False Accepted condition, and of a
	// False BGPConfigured condition whose BIRD config cannot be built from
	// the NodeConfig and the node's addresses (the message names the field).
	ReasonInvalid = "Invalid"
	// ReasonPoolOverlap is the reason of a False Accepted condition (and
	// of the Warning Event beside it) when spec.cidr6 or spec.cidr4
	// overlaps the pool of another, older NodeConfig, which the message
	// names: the older one keeps its pools.
	ReasonPoolOverlap = "PoolOverlap"

	// ConditionBGPConfigured is set by an agent that drives BIRD (flag
	// --bird-config): True when BIRD runs the config rendered from this
	// NodeConfig, False with one of the reasons below otherwise. It says
	// nothing of the sessions' state: a session to a router that is down is
	// still configured.
	ConditionBGPConfigured = "BGPConfigured"
	// ReasonConfigured: BIRD took the config (True).
	ReasonConfigured = "Configured"
	// ReasonNoBGP: spec.bgp is not set; BIRD runs the bootstrap config,
	// without sessions (False).
	ReasonNoBGP = "NoBGP"
	// ReasonPasswordUnavailable: a peer's passwordSecretRef cannot be read;
	// BIRD keeps the config it ran before (False).
	ReasonPasswordUnavailable = "PasswordUnavailable"
	// ReasonAddressesUnavailable: the node's interface addresses cannot be
	// read; BIRD keeps the config it ran before (False).
	ReasonAddressesUnavailable = "AddressesUnavailable"
	// ReasonReloadFailed: BIRD refused the config or could not be reached;
	// the agent retries with backoff (False).
	ReasonReloadFailed = "ReloadFailed"
)

// Peer addresses that stand for the node's default gateway of a family
// (BGPPeer.Address), resolved by the agent from the node's routing table.
const (
	PeerDefaultGateway6 = "default-gateway-ipv6"
	PeerDefaultGateway4 = "default-gateway-ipv4"
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
// +kubebuilder:printcolumn:name="Free4",type=string,JSONPath=`.status.usage.pools[?(@.family=="ipv4")].free`
// +kubebuilder:printcolumn:name="BGP",type=integer,JSONPath=`.status.usage.bgpEstablished`
// +kubebuilder:printcolumn:name="Peers",type=integer,priority=1,JSONPath=`.status.usage.bgpConfigured`
// +kubebuilder:printcolumn:name="Anycast",type=integer,priority=1,JSONPath=`.status.usage.anycastAnnounced`
// +kubebuilder:printcolumn:name="Policy",type=date,priority=1,JSONPath=`.status.usage.policyAppliedTime`
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
	// RouterID is the node's BGP identifier, an IPv4 address in canonical
	// form other than 0.0.0.0. When omitted, the agent takes the lowest
	// IPv4 unicast address of the node's interfaces outside spec.cidr4; an
	// IPv6-only node must set it.
	// +optional
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="routerID must be an IPv4 address such as 192.0.2.11"
	// +kubebuilder:validation:XValidation:rule="!isIP(self) || ip.isCanonical(self)",message="routerID must be in canonical form (no leading zeros)"
	// +kubebuilder:validation:XValidation:rule="!isIP(self) || !ip(self).isUnspecified()",message="routerID must not be 0.0.0.0"
	RouterID string `json:"routerID,omitempty"`
	// Peers are the node's BGP neighbours, at most one per address.
	// +optional
	// +listType=map
	// +listMapKey=address
	// +kubebuilder:validation:MaxItems=32
	Peers []BGPPeer `json:"peers,omitempty"`
}

// BGPPeer is one BGP neighbour.
//
// +kubebuilder:validation:XValidation:rule="!has(self.sourceAddress) || !isIP(self.sourceAddress) || !isIP(self.address) || ip(self.sourceAddress).family() == ip(self.address).family()",message="sourceAddress must be of the family of address"
// +kubebuilder:validation:XValidation:rule="!has(self.sourceAddress) || !isIP(self.sourceAddress) || isIP(self.address) || (self.address == 'default-gateway-ipv6') == (ip(self.sourceAddress).family() == 6)",message="sourceAddress must be of the family of the default gateway address names"
type BGPPeer struct {
	// Address is the neighbour's IPv6 or IPv4 unicast address in canonical
	// form (lower case, zeros compressed: 2001:db8::1), so that two spellings
	// of one address cannot both be listed. Link-local neighbours are not
	// supported: they would need an interface. The value
	// default-gateway-ipv6 (or default-gateway-ipv4) stands for the gateway
	// of the node's default route of that family, which the agent reads from
	// the node's routing table each time it renders BIRD's config: one
	// NodeConfig template (a NodePool's) fits nodes on different links.
	// +required
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self) || self in ['default-gateway-ipv6', 'default-gateway-ipv4']",message="address must be an IP address such as 2001:db8::1 or 192.0.2.1, or default-gateway-ipv6 or default-gateway-ipv4"
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
	// SourceAddress is the node address the session uses (BIRD's `local`,
	// and the next hop announced). Omitted, the node address on the
	// neighbour's subnet is used; a multihop neighbour on no subnet of the
	// node needs it. It must be one of the node's interface addresses, of the
	// neighbour's family, in canonical form.
	// +optional
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="sourceAddress must be an IP address such as 2001:db8::2 or 192.0.2.2"
	// +kubebuilder:validation:XValidation:rule="!isIP(self) || ip(self).isGlobalUnicast()",message="sourceAddress must be a unicast address (not link-local, loopback, multicast or unspecified)"
	// +kubebuilder:validation:XValidation:rule="!isIP(self) || ip.isCanonical(self)",message="sourceAddress must be in canonical form (lower case, zeros compressed, e.g. 2001:db8::2)"
	SourceAddress string `json:"sourceAddress,omitempty"`
	// BFD turns on BFD for the session, so a dead link is noticed in
	// about a second instead of after the hold time.
	// +optional
	BFD bool `json:"bfd,omitempty"`
	// HoldTime is the BGP hold time in seconds: 0 (or omitted) for BIRD's
	// default of 240, else 3 to 65535.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:validation:XValidation:rule="self == 0 || self >= 3",message="holdTime must be 0 (the default) or 3 to 65535 seconds"
	HoldTime int32 `json:"holdTime,omitempty"`
	// GracefulRestart keeps the node's routes at the neighbour while the
	// agent or BIRD restarts (RFC 4724). On unless set to false.
	// +optional
	// +kubebuilder:default=true
	GracefulRestart *bool `json:"gracefulRestart,omitempty"`
	// RestartTime is how long, in seconds, the neighbour is asked to keep
	// the node's routes while it restarts: 0 (or omitted) for BIRD's default
	// of 120, else 1 to 4095.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4095
	RestartTime int32 `json:"restartTime,omitempty"`
	// Multihop is the TTL of a session to a neighbour that is not directly
	// connected, 1 to 255; 0 (or omitted) for a directly connected one.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=255
	Multihop int32 `json:"multihop,omitempty"`
	// PasswordSecretRef names the TCP MD5 password (RFC 2385) of the
	// session: a key of a Secret in the agent's namespace (flock-system,
	// as deploy/ installs it), labelled flock.fritzlab.net/bgp-password:
	// "true"; the agent reads it again every 15 s. The value must be
	// printable ASCII without '"' or '\', at most 80 bytes.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`
	// Communities are standard BGP communities (ASN:value, each 0 to
	// 65535) added to every route announced to this neighbour, for the
	// router's policy to match on.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=11
	// +kubebuilder:validation:items:Pattern=`^\d{1,5}:\d{1,5}$`
	// +kubebuilder:validation:items:XValidation:rule="self.split(':').all(x, int(x) <= 65535)",message="communities entries must be ASN:value with both at most 65535"
	Communities []string `json:"communities,omitempty"`
	// LargeCommunities are large BGP communities (global:data1:data2, each
	// 0 to 4294967295) added to every route announced to this neighbour.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=32
	// +kubebuilder:validation:items:Pattern=`^\d{1,10}:\d{1,10}:\d{1,10}$`
	// +kubebuilder:validation:items:XValidation:rule="self.split(':').all(x, int(x) <= 4294967295)",message="largeCommunities entries must be global:data1:data2 with each at most 4294967295"
	LargeCommunities []string `json:"largeCommunities,omitempty"`
}

// SecretKeyRef names one key of a Secret in the agent's namespace.
type SecretKeyRef struct {
	// Namespace, when set, must be the agent's namespace (flock-system
	// as deploy/ installs it, or the agent's --namespace): the agent reads
	// no Secret elsewhere, and rejects (Accepted=False) a NodeConfig that
	// names another namespace. Omitted: the agent's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`
	// Name is the Secret's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
	// Key is the key of the Secret's data that holds the value.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
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
	// (type Accepted) and, on a node whose agent drives BIRD, whether BIRD
	// runs the BGP config made from it (type BGPConfigured).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// DrainingPools are former pools of the node (spec.cidr6 or spec.cidr4
	// changed) in which pods still hold addresses. The agent keeps routing
	// and announcing each one until its last pod is deleted, then drops it
	// from this list; new pods get addresses from the current pools only.
	// +optional
	// +listType=map
	// +listMapKey=cidr
	// +kubebuilder:validation:MaxItems=64
	DrainingPools []DrainingPool `json:"drainingPools,omitempty"`
	// Usage is what the node makes of the configuration: addresses per
	// pool, BGP sessions, anycast announcements, the NetworkPolicy table.
	// The agent writes it when it changes, at most every few seconds
	// (never on every CNI ADD).
	// +optional
	Usage *NodeUsage `json:"usage,omitempty"`
}

// DrainingPool is a former pool that still holds pods.
type DrainingPool struct {
	// CIDR is the former pool (or, for a pod whose allocation predates
	// recording its pool, the pod's address as a /128 or /32).
	// +kubebuilder:validation:MaxLength=49
	CIDR string `json:"cidr"`
	// Allocations is the number of pod attachments with an address in it.
	// +kubebuilder:validation:Minimum=0
	Allocations int32 `json:"allocations"`
}

// NodeUsage is the node's use of its configuration, as its agent last
// reported it.
type NodeUsage struct {
	// Pools are the pod pools with their allocated and free addresses.
	// +optional
	// +listType=map
	// +listMapKey=family
	// +kubebuilder:validation:MaxItems=2
	Pools []PoolUsage `json:"pools,omitempty"`
	// BGPConfigured counts the BGP peers of spec.bgp; BGPEstablished those
	// whose session BIRD reports Established.
	// +optional
	BGPConfigured int32 `json:"bgpConfigured,omitempty"`
	// +optional
	BGPEstablished int32 `json:"bgpEstablished,omitempty"`
	// AnycastAnnounced counts the anycast addresses handed to BIRD to
	// announce (a Ready local pod serves each).
	// +optional
	AnycastAnnounced int32 `json:"anycastAnnounced,omitempty"`
	// PolicyGeneration counts the NetworkPolicy tables the agent loaded
	// since it started; PolicyAppliedTime is when it last loaded one or
	// found the kernel's up to date. Both unset without NetworkPolicy.
	// +optional
	PolicyGeneration int64 `json:"policyGeneration,omitempty"`
	// +optional
	PolicyAppliedTime *metav1.Time `json:"policyAppliedTime,omitempty"`
}

// PoolUsage is one pool's usage.
type PoolUsage struct {
	// Family is ipv6 or ipv4.
	// +kubebuilder:validation:Enum=ipv6;ipv4
	Family string `json:"family"`
	// CIDR is the pool (spec.cidr6 or spec.cidr4 as the agent uses it).
	// +kubebuilder:validation:MaxLength=49
	CIDR string `json:"cidr"`
	// Allocated counts the addresses pods hold.
	// +kubebuilder:validation:Minimum=0
	Allocated int64 `json:"allocated"`
	// Free counts the addresses still free, in decimal (an IPv6 /64 holds
	// more than an int64 can count).
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	Free string `json:"free"`
}
