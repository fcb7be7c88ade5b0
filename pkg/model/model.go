// Package model holds flock's own small view of nodes and pods: what the
// decisions (IPAM, annotations, data path, BGP) need and nothing else.
// Kubernetes objects and config files are turned into these types in one
// place.
package model

import (
	"errors"
	"net/netip"
)

// Families says which address families a pod gets.
type Families struct {
	IPv6 bool
	IPv4 bool
}

// FamilyDefaults are optional per-family defaults; nil means "not said".
type FamilyDefaults struct {
	IPv6 *bool
	IPv4 *bool
}

// Node is the configuration flock uses for the node it runs on.
type Node struct {
	// Name is the Node's (and NodeConfig's) name.
	Name string
	// Generation is the NodeConfig's metadata.generation, so that what the
	// agent reports on its status names the spec it is about.
	Generation int64
	// Pool6 and Pool4 are the node's pod pools; the zero Prefix means the
	// node has no pool of that family.
	Pool6 netip.Prefix
	Pool4 netip.Prefix
	// Defaults are the node's family defaults (NodeConfig spec.defaults).
	Defaults FamilyDefaults
	// Annotations are the NodeConfig's metadata.annotations (ip-algo default).
	Annotations map[string]string
	// AnycastAllowed, when not empty, are the only ranges pods may serve
	// anycast addresses from (NodeConfig spec.anycast.allowedCIDRs).
	AnycastAllowed []netip.Prefix
	// BGP is the node's BGP speaker (NodeConfig spec.bgp); nil: no BGP.
	BGP *BGP
}

// Pod is what flock knows of a pod.
type Pod struct {
	Namespace   string
	Name        string
	UID         string
	Annotations map[string]string
}

// Key is the pod's namespace/name.
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// ErrNoNodeConfig is returned by a source that has no configuration for its
// node yet.
var ErrNoNodeConfig = errors.New("no NodeConfig for this node")

// ErrPodNotFound is returned by a source that does not know the pod.
var ErrPodNotFound = errors.New("pod not found")
