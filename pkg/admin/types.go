// Package admin is the node agent's read-only operator API: HTTP and JSON
// on a unix socket of its own (like cilium-agent's API socket), which
// flockctl reads. It serves what the agent's components already know (the
// applied NodeConfig, the allocations, BIRD's sessions, the anycast
// reconciler's routes, the NetworkPolicy last applied) and changes nothing.
//
// The types here are the wire format; the package imports nothing of
// flock's, so flockctl links the types and the client alone.
package admin

import (
	"net/netip"
	"time"
)

// DefaultSocket is where the agent serves the admin API by default: beside
// the CNI plugin's socket (rpc.DefaultSocket), in the directory the
// DaemonSet mounts from the host.
const DefaultSocket = "/run/flock/admin.sock"

// The API's paths; each answers GET only.
const (
	PathStatus      = "/v1/status"
	PathAllocations = "/v1/allocations"
	PathBGP         = "/v1/bgp"
	PathAnycast     = "/v1/anycast"
	PathPolicy      = "/v1/policy"
	PathServices    = "/v1/services"
)

// Status is the node at a glance (GET /v1/status): `flockctl status`.
type Status struct {
	// Node is the NodeConfig's name (the Node's name in Kubernetes mode).
	Node string `json:"node,omitempty"`
	// Mode is "kubernetes" or "file".
	Mode string `json:"mode"`
	// Configured says whether the agent has applied a NodeConfig (and so
	// can serve ADD); ConfigError says why not.
	Configured  bool   `json:"configured"`
	ConfigError string `json:"configError,omitempty"`
	// Pools are the node's pools with the addresses allocated in each.
	Pools []Pool `json:"pools"`
	// Allocations counts the pod attachments on this node.
	Allocations  int            `json:"allocations"`
	BGP          BGPSummary     `json:"bgp"`
	Anycast      AnycastSummary `json:"anycast"`
	Policy       PolicySummary  `json:"policy"`
	AntiSpoofing AntiSpoofing   `json:"antiSpoofing"`
}

// AntiSpoofing is the anti-spoofing part of Status: packets local pods sent
// from an address they were not given, dropped at the node.
type AntiSpoofing struct {
	Enabled bool `json:"enabled"`
	// DroppedPackets and DroppedBytes are the kernel's counter since the
	// table was created; Error says why it could not be read.
	DroppedPackets uint64 `json:"droppedPackets"`
	DroppedBytes   uint64 `json:"droppedBytes"`
	Error          string `json:"error,omitempty"`
}

// Pool is one of the node's pod pools.
type Pool struct {
	Family string       `json:"family"` // ipv6 or ipv4
	CIDR   netip.Prefix `json:"cidr"`
	// Allocated counts the pod addresses in the pool.
	Allocated int `json:"allocated"`
}

// BGPSummary is the BGP part of Status.
type BGPSummary struct {
	// Enabled: the agent drives BIRD (--bird-config, --bird-socket).
	Enabled bool `json:"enabled"`
	// Error says why BIRD could not be asked (not running, no socket).
	Error       string `json:"error,omitempty"`
	Sessions    int    `json:"sessions"`
	Established int    `json:"established"`
}

// AnycastSummary is the anycast part of Status.
type AnycastSummary struct {
	// Enabled: the agent reconciles anycast routes (a netlink data path).
	Enabled bool `json:"enabled"`
	// Addresses counts the anycast addresses local pods ask for; Routed
	// those with a route (a Ready pod serves them), Announced those handed
	// to BIRD.
	Addresses int `json:"addresses"`
	Routed    int `json:"routed"`
	Announced int `json:"announced"`
}

// PolicySummary is the NetworkPolicy part of Status.
type PolicySummary struct {
	Enabled bool `json:"enabled"`
	// Synced: the policy informers have listed once (before that nothing
	// is applied and ADD fails closed).
	Synced bool `json:"synced"`
	// Restricted counts the local pods some policy isolates.
	Restricted int `json:"restricted"`
	// LastApply is when the whole ruleset was last applied (or found
	// unchanged); LastError the error of the last attempt, if it failed.
	LastApply time.Time `json:"lastApply,omitzero"`
	LastError string    `json:"lastError,omitempty"`
}

// Allocations are the node's pod attachments (GET /v1/allocations):
// `flockctl pods`.
type Allocations struct {
	Items []Allocation `json:"items"`
}

// Allocation is one pod attachment, as the agent stored it.
type Allocation struct {
	Namespace   string     `json:"namespace"`
	Name        string     `json:"name"`
	UID         string     `json:"uid,omitempty"`
	ContainerID string     `json:"containerID"`
	IfName      string     `json:"ifName"`
	HostIface   string     `json:"hostIface"`
	Netns       string     `json:"netns,omitempty"`
	IPv6        netip.Addr `json:"ipv6,omitzero"`
	IPv4        netip.Addr `json:"ipv4,omitzero"`
	// Anycast are the anycast addresses accepted for the pod (on its lo).
	Anycast []netip.Addr `json:"anycast,omitempty"`
}

// BGP is BIRD's view of the node's BGP sessions (GET /v1/bgp):
// `flockctl bgp`.
type BGP struct {
	Enabled bool `json:"enabled"`
	// ASN is the node's AS number from its NodeConfig; 0 without spec.bgp.
	ASN uint32 `json:"asn,omitempty"`
	// Error says why BIRD could not be asked; Sessions then lists the
	// configured peers only, with the state "unknown".
	Error    string    `json:"error,omitempty"`
	Sessions []Session `json:"sessions"`
}

// Session is one BGP protocol of BIRD, or a configured peer BIRD does not
// have (State "missing": its config is not loaded yet).
type Session struct {
	// Peer and PeerASN are from the NodeConfig; a protocol of no
	// configured peer (a config BIRD has not reloaded yet) has neither.
	Peer     netip.Addr `json:"peer,omitzero"`
	PeerASN  uint32     `json:"peerASN,omitempty"`
	Protocol string     `json:"protocol"`
	// State, Since and Info are BIRD's `show protocols` columns: up,
	// start, down; when; Established, Active, Connect and any error.
	State       string `json:"state"`
	Since       string `json:"since,omitempty"`
	Info        string `json:"info,omitempty"`
	Established bool   `json:"established"`
}

// States of a Session that BIRD did not report.
const (
	StateMissing = "missing" // a configured peer BIRD has no protocol for
	StateUnknown = "unknown" // BIRD could not be asked
)

// Anycast is the node's anycast addresses (GET /v1/anycast):
// `flockctl anycast`.
type Anycast struct {
	Enabled bool `json:"enabled"`
	// BGP: the reconciler hands the routed addresses to BIRD.
	BGP    bool           `json:"bgp"`
	Routes []AnycastRoute `json:"routes"`
}

// AnycastRoute is one anycast address local pods ask for.
type AnycastRoute struct {
	Address netip.Addr `json:"address"`
	// Routed: the kernel has the route (some Ready pod serves it), through
	// NextHops; Announced: BIRD was given it to announce.
	Routed    bool         `json:"routed"`
	Announced bool         `json:"announced"`
	NextHops  []NextHop    `json:"nextHops,omitempty"`
	Pods      []AnycastPod `json:"pods"`
}

// NextHop is one path of an anycast route: a pod's own eth0 address
// through its host veth.
type NextHop struct {
	Via netip.Addr `json:"via"`
	Dev string     `json:"dev"`
}

// AnycastPod is a local pod that asks for an anycast address.
type AnycastPod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Ready     bool   `json:"ready"`
}

// Services are the addresses of the LoadBalancer Services flock serves and
// what this node does with each (GET /v1/services): `flockctl services`.
type Services struct {
	// Enabled: the agent announces Service addresses (Kubernetes mode with
	// BGP on).
	Enabled bool `json:"enabled"`
	// Synced: the Service, EndpointSlice and ServiceAddressPool caches
	// have listed once (before that nothing is decided).
	Synced bool             `json:"synced"`
	Items  []ServiceAddress `json:"items"`
}

// ServiceAddress is one address of one Service's status.loadBalancer.ingress.
type ServiceAddress struct {
	// Service is namespace/name.
	Service string     `json:"service"`
	Address netip.Addr `json:"address"`
	// Policy is the externalTrafficPolicy: Local or Cluster.
	Policy string `json:"policy"`
	// Pool is the ServiceAddressPool the address lies in ("" for none).
	Pool string `json:"pool,omitempty"`
	// LocalEndpoints and ReadyEndpoints count the Service's Ready
	// endpoints of the address's family on this node and in the cluster.
	LocalEndpoints int  `json:"localEndpoints"`
	ReadyEndpoints int  `json:"readyEndpoints"`
	Announced      bool `json:"announced"`
	// Reason says why the node announces it or not.
	Reason string `json:"reason"`
}

// Policy is the NetworkPolicy of the node's pods as last applied
// (GET /v1/policy): `flockctl policy`.
type Policy struct {
	Enabled   bool      `json:"enabled"`
	Synced    bool      `json:"synced"`
	LastApply time.Time `json:"lastApply,omitzero"`
	// LastChange is when the kernel's table was last written.
	LastChange    time.Time   `json:"lastChange,omitzero"`
	LastError     string      `json:"lastError,omitempty"`
	LastErrorTime time.Time   `json:"lastErrorTime,omitzero"`
	Pods          []PodPolicy `json:"pods"`
}

// PodPolicy is what the ruleset does with one local pod's traffic.
type PodPolicy struct {
	Namespace string  `json:"namespace"`
	Name      string  `json:"name"`
	Iface     string  `json:"iface"`
	Ingress   Verdict `json:"ingress"`
	Egress    Verdict `json:"egress"`
}

// Verdict is what one direction of a pod's traffic meets.
type Verdict struct {
	Mode string `json:"mode"` // one of the Mode constants
	// Chain is the nftables allow-list chain (Mode AllowList), shared by
	// the pods with the same allow-list.
	Chain string `json:"chain,omitempty"`
}

// Verdict modes.
const (
	Unrestricted = "unrestricted" // no policy isolates the pod
	DenyAll      = "deny-all"     // isolated, nothing allowed
	AllowList    = "allow-list"   // isolated, Chain allows
	// Pending: the pod is attached but not in the ruleset last applied
	// (the next sync adds it).
	Pending = "pending"
)

// Error is the body of every answer that is not 200.
type Error struct {
	Error string `json:"error"`
}
