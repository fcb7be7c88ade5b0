package realnode

import (
	"fmt"
	"path/filepath"
	"strings"
)

// KubeProxy is one node's kube-proxy in nftables mode.
type KubeProxy struct {
	Dir        string
	NodeName   string
	Kubeconfig string
	// ClusterCIDRs cover every node's pod pool: traffic from them is the
	// cluster's own (not masqueraded).
	ClusterCIDRs []string
}

func (p KubeProxy) ConfigFile() string { return filepath.Join(p.Dir, "kube-proxy.yaml") }

// Config renders the KubeProxyConfiguration. conntrack's zeros leave the
// machine-wide nf_conntrack_max and timeouts as they are (shared machine);
// cluster traffic is told by the pods' CIDRs.
func (p KubeProxy) Config() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: %q
clientConnection:
  kubeconfig: %q
bindAddress: "::"
healthzBindAddress: "127.0.0.1:10256"
metricsBindAddress: "127.0.0.1:10249"
clusterCIDR: %q
detectLocalMode: ClusterCIDR
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, p.NodeName, p.Kubeconfig, strings.Join(p.ClusterCIDRs, ","))
}

// Args are kube-proxy's command line.
func (p KubeProxy) Args(bin string) []string {
	return []string{bin, "--config=" + p.ConfigFile(), "--v=1"}
}

// ControllerManagerArgs runs only the controllers the lab's real nodes rely
// on: EndpointSlices for kube-proxy, garbage collection and namespace
// deletion for the tests' cleanup.
func ControllerManagerArgs(bin, kubeconfig string) []string {
	return []string{bin,
		"--kubeconfig=" + kubeconfig,
		"--controllers=endpointslice-controller,endpointslice-mirroring-controller,garbage-collector-controller,namespace-controller",
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--secure-port=0",
		"--v=1",
	}
}

// SchedulerArgs places the pods that name no node.
func SchedulerArgs(bin, kubeconfig string) []string {
	return []string{bin,
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--v=1",
	}
}
