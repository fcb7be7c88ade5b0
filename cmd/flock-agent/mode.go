package main

import (
	"errors"
	"fmt"
	"net/netip"
)

// mode is where the agent learns its node's configuration and its pods.
type mode struct {
	// File mode (tests, demo): a NodeConfig manifest and pod metadata files.
	NodeConfig string
	PodsDir    string
	// Kubernetes mode: informers through the kubeconfig, or through the
	// pod's service account when Kubeconfig is empty.
	Kube       bool
	Kubeconfig string
	NodeName   string
	// Namespace is the agent's own (--namespace): the only one its
	// NodeConfig may name BGP password Secrets in.
	Namespace string
	// Netpol enforces NetworkPolicy (Kubernetes mode only, --netpol);
	// Kubernetes mode without it deletes flock's table at start.
	Netpol bool
	// AntiSpoofing drops packets a pod sends from an address it was not
	// given (--anti-spoofing), in both modes.
	AntiSpoofing bool
	// ServiceCIDRs are the cluster's Service ranges (--service-cidrs).
	ServiceCIDRs []netip.Prefix
}

// modeFlags are the flags and environment that choose the mode.
type modeFlags struct {
	NodeConfig, PodsDir  string
	Kubeconfig, NodeName string
	// NodeNameEnv is $NODE_NAME (set by the DaemonSet from spec.nodeName).
	NodeNameEnv string
	// InCluster is set when $KUBERNETES_SERVICE_HOST and _PORT are, as in
	// every pod.
	InCluster bool
}

// chooseMode picks exactly one mode, or says why it cannot.
func chooseMode(f modeFlags) (mode, error) {
	if f.NodeConfig != "" {
		if f.Kubeconfig != "" || f.NodeName != "" {
			return mode{}, errors.New("--node-config (file mode) cannot be combined with --kubeconfig or --node-name (Kubernetes mode)")
		}
		return mode{NodeConfig: f.NodeConfig, PodsDir: f.PodsDir}, nil
	}
	if f.PodsDir != "" {
		return mode{}, errors.New("--pods-dir needs --node-config (file mode)")
	}
	if f.Kubeconfig == "" && !f.InCluster {
		return mode{}, errors.New("no source: give --node-config FILE (file mode), or --kubeconfig FILE, or run in a pod (in-cluster config)")
	}
	m := mode{Kube: true, Kubeconfig: f.Kubeconfig, NodeName: f.NodeName}
	if m.NodeName == "" {
		m.NodeName = f.NodeNameEnv
	}
	if m.NodeName == "" {
		return mode{}, errors.New("kubernetes mode needs the node's name: --node-name or $NODE_NAME")
	}
	return m, nil
}

func (m mode) String() string {
	switch {
	case !m.Kube:
		return fmt.Sprintf("file (nodeconfig %s)", m.NodeConfig)
	case m.Kubeconfig != "":
		return fmt.Sprintf("kubernetes (node %s, kubeconfig %s)", m.NodeName, m.Kubeconfig)
	default:
		return fmt.Sprintf("kubernetes (node %s, in-cluster)", m.NodeName)
	}
}
