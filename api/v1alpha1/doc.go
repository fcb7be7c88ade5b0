// Package v1alpha1 holds the flock.fritzlab.net/v1alpha1 API: NodeConfig, the
// per-node pools, BGP peers and defaults an operator gives each node.
//
// The kubebuilder markers on the types are the CRD's validation; the agent
// (pkg/model.NodeFromConfig) validates again before use, with the limits
// exported here so the two cannot drift apart.
//
// +kubebuilder:object:generate=true
// +groupName=flock.fritzlab.net
package v1alpha1
