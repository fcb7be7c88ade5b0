// Package kube connects the agent to Kubernetes: a Source that serves the
// node's NodeConfig and its pods from informer caches, a Recorder that turns
// annotation warnings into Events on the pod, the NodeConfig's Accepted
// and BGPConfigured conditions, the Node's NetworkUnavailable condition,
// the BGP passwords from Secrets in the agent's namespace, and a Cluster
// that serves every NetworkPolicy, namespace and pod for policy, and
// Services that serve every Service, EndpointSlice and ServiceAddressPool
// for the announcement of LoadBalancer addresses.
//
// The agent reads its own NodeConfig and the pods of its own node, and for
// NetworkPolicy the policies, namespaces and pods of the whole cluster; it
// uses exactly these verbs: nodeconfigs get/list/watch, nodeconfigs/status
// get/update/patch, pods get/list/watch, networkpolicies list/watch,
// namespaces list/watch, services list/watch, endpointslices list/watch,
// serviceaddresspools list/watch, events create/patch, nodes get,
// nodes/status patch, and secrets get in its own namespace.
//
// It talks to the API server through apiclient (REST clients of only the
// groups above) and client-go's dynamic client (flock's own resources),
// never through client-go's generated clientset, informer factories or
// record package: those link every API group of Kubernetes into the
// agent's binary, which cost it a third of its resident memory.
package kube

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// NodeConfigResource is the NodeConfig API resource.
var NodeConfigResource = v1alpha1.NodeConfigGVR

// RESTConfig loads the client configuration: the kubeconfig file when path
// is set, the pod's service account (in-cluster) otherwise.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
		}
	} else {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("load in-cluster config: %w", err)
		}
	}
	return cfg, nil
}
