// Package v1alpha1 holds the flock.fritzlab.net/v1alpha1 API: NodeConfig, the
// per-node pools, BGP peers and defaults an operator gives each node.
package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Group and Version of the API.
const (
	Group   = "flock.fritzlab.net"
	Version = "v1alpha1"
)

// NodeConfig is the configuration of one node; its name is the Node's name.
type NodeConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NodeConfigSpec   `json:"spec"`
	Status NodeConfigStatus `json:"status,omitempty"`
}

// NodeConfigSpec is what the operator asks of the node.
type NodeConfigSpec struct {
	// CIDR6 is the node's IPv6 pod pool, e.g. 2001:db8:42:1::/64.
	CIDR6 string `json:"cidr6,omitempty"`
	// CIDR4 is the node's IPv4 pod pool, e.g. 10.42.1.0/24.
	CIDR4 string `json:"cidr4,omitempty"`
	// Defaults are the families a pod gets when its annotations say nothing.
	// Omitted fields fall back to the built-in default: both families.
	Defaults *FamilyDefaults `json:"defaults,omitempty"`
	// BGP describes the node's BGP speaker and its peers.
	BGP *BGPSpec `json:"bgp,omitempty"`
	// Anycast restricts which anycast addresses pods on this node may serve.
	Anycast *AnycastSpec `json:"anycast,omitempty"`
}

// FamilyDefaults says which address families a pod gets by default.
type FamilyDefaults struct {
	// IPv6 gives pods an IPv6 address unless they opt out.
	IPv6 *bool `json:"ipv6,omitempty"`
	// IPv4 gives pods an IPv4 address unless they opt out.
	IPv4 *bool `json:"ipv4,omitempty"`
}

// BGPSpec is the node's BGP speaker.
type BGPSpec struct {
	// ASN is the node's local autonomous system number.
	ASN uint32 `json:"asn"`
	// Peers are the node's BGP neighbours.
	Peers []BGPPeer `json:"peers,omitempty"`
}

// BGPPeer is one BGP neighbour.
type BGPPeer struct {
	// Address is the neighbour's IPv6 or IPv4 address.
	Address string `json:"address"`
	// ASN is the neighbour's autonomous system number.
	ASN uint32 `json:"asn"`
}

// AnycastSpec constrains per-pod anycast addresses.
type AnycastSpec struct {
	// AllowedCIDRs, when set, are the only ranges anycast addresses may come from.
	AllowedCIDRs []string `json:"allowedCIDRs,omitempty"`
}

// NodeConfigStatus is what the agent reports back.
type NodeConfigStatus struct {
	// Conditions report whether the agent accepted the configuration.
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
