package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fritzlab/flock/internal/lab/apiproxy"
	"github.com/fritzlab/flock/internal/lab/kubelet"
	"github.com/fritzlab/flock/internal/lab/proxy"
	"github.com/fritzlab/flock/internal/lab/realnode"
	"github.com/fritzlab/flock/internal/spoof"
)

// serveCmd is the server lab pods run: it answers with the pod's identity.
func serveCmd() *cobra.Command {
	var tcp, udp []int
	cmd := &cobra.Command{
		Use:   "serve [--tcp PORT]... [--udp PORT]...",
		Short: "Answer every connection with this pod's namespace/name (for lab pods)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			identity := os.Getenv("POD_NAMESPACE") + "/" + os.Getenv("POD_NAME")
			return kubelet.Serve(cmd.Context(), tcp, udp, identity)
		},
	}
	cmd.Flags().IntSliceVar(&tcp, "tcp", nil, "TCP port to answer on (repeatable)")
	cmd.Flags().IntSliceVar(&udp, "udp", nil, "UDP port to answer on (repeatable)")
	return cmd
}

// pauseCmd is the sandbox ("pause") container of --runtime=real: it holds
// the pod's namespaces until containerd stops it.
func pauseCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "pause",
		Short:  "Wait for SIGTERM (the pod sandbox process of the lab's images)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			<-cmd.Context().Done()
			return nil
		},
	}
}

// kubeletExecCmd starts the real kubelet (--runtime=real) in a mount
// namespace of its own where the machine-wide sysctls kubelet insists on
// read as it wants them, so it neither rewrites them nor refuses to start.
func kubeletExecCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "kubelet-exec --sysctl-dir DIR -- KUBELET ARGS...",
		Short:  "Exec the real kubelet with its own view of the kernel tunables (started by flock-lab up --runtime=real)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return realnode.ExecWithSysctls(dir, args)
		},
	}
	cmd.Flags().StringVar(&dir, "sysctl-dir", "", "where the files shown as /proc/sys/... are written")
	cmd.MarkFlagRequired("sysctl-dir")
	return cmd
}

// kubeletCmd is the daemon `flock-lab up` starts in each node namespace.
func kubeletCmd() *cobra.Command {
	var cfg kubelet.Config
	var kubeconfig string
	cmd := &cobra.Command{
		Use:    "kubelet --node NAME --kubeconfig FILE ...",
		Short:  "Run a node's kubelet-lite (started by flock-lab up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return err
			}
			cfg.RESTConfig = rc
			cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
			return kubelet.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.NodeName, "node", "", "the Node this kubelet-lite runs")
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig to reach the API server")
	f.StringVar(&cfg.CNIBinDir, "cni-bin-dir", "", "directory of the CNI plugins")
	f.StringVar(&cfg.CNIConfList, "cni-conflist", "", "the node's CNI network config list")
	f.StringVar(&cfg.StateDir, "state-dir", "", "pod records and container logs")
	f.StringVar(&cfg.PodNetnsPrefix, "netns-prefix", "", "prefix of pod network namespace names")
	f.StringVar(&cfg.BinDir, "bin-dir", "", "directory put first in containers' PATH")
	f.StringArrayVar(&cfg.HostIPs, "host-ip", nil, "the node's addresses, primary family first (repeatable)")
	f.StringVar(&cfg.NodeNetns, "node-netns", "", "path of the node's namespace when not run inside it")
	for _, name := range []string{"node", "kubeconfig", "cni-bin-dir", "cni-conflist", "state-dir"} {
		cmd.MarkFlagRequired(name)
	}
	return cmd
}

// apiproxyCmd is the daemon that makes the API server reachable inside the
// node namespaces.
func apiproxyCmd() *cobra.Command {
	var target, egressSocket string
	var namespaces, egressHosts []string
	cmd := &cobra.Command{
		Use:    "apiproxy --target HOST:PORT --netns NAME...",
		Short:  "Forward " + apiproxy.Addr + " in each node namespace to the API server (started by flock-lab up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			if egressSocket == "" {
				return apiproxy.Run(cmd.Context(), target, namespaces, log)
			}
			hosts := map[string]string{}
			for _, h := range egressHosts {
				host, netns, ok := strings.Cut(h, "=")
				if !ok || host == "" || netns == "" {
					return fmt.Errorf("--egress-host %q: want HOST=NETNS", h)
				}
				hosts[host] = netns
			}
			errc := make(chan error, 1)
			go func() { errc <- apiproxy.Egress(cmd.Context(), egressSocket, hosts, log) }()
			if err := apiproxy.Run(cmd.Context(), target, namespaces, log); err != nil {
				return err
			}
			return <-errc
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "the API server's host:port")
	cmd.Flags().StringArrayVar(&namespaces, "netns", nil, "node namespace to listen in (repeatable)")
	cmd.Flags().StringVar(&egressSocket, "egress-socket", "", "also serve the API server's egress proxy (HTTP CONNECT) on this unix socket")
	cmd.Flags().StringArrayVar(&egressHosts, "egress-host", nil, "HOST=NETNS: CONNECTs to HOST go into NETNS (repeatable)")
	cmd.MarkFlagRequired("target")
	return cmd
}

// proxyCmd is the daemon `flock-lab up` starts in each node namespace to
// give Services their ClusterIPs, as kube-proxy would.
func proxyCmd() *cobra.Command {
	var kubeconfig string
	cmd := &cobra.Command{
		Use:    "proxy --kubeconfig FILE",
		Short:  "Send Service ClusterIP traffic to the Service's Ready pods (started by flock-lab up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
			if err != nil {
				return err
			}
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			return proxy.Run(cmd.Context(), cs, slog.New(slog.NewTextHandler(os.Stderr, nil)))
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig to reach the API server")
	cmd.MarkFlagRequired("kubeconfig")
	return cmd
}

// spoofCmd sends packets with a forged source from the namespace it runs
// in (`flock-lab exec POD -- flock-lab spoof ...`): the lab's
// anti-spoofing test. Hidden, like the other helpers the lab runs itself.
func spoofCmd() *cobra.Command {
	var from []string
	var proto string
	cmd := &cobra.Command{
		Use:    "spoof --from ADDR... --proto tcp|udp DEST:PORT",
		Short:  "Send a TCP SYN or a UDP datagram from each forged source address (anti-spoofing tests)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dst, err := netip.ParseAddrPort(args[0])
			if err != nil {
				return fmt.Errorf("spoof: destination %q: want ADDR:PORT ([ADDR]:PORT for IPv6): %w", args[0], err)
			}
			for _, f := range from {
				src, err := netip.ParseAddr(f)
				if err != nil {
					return fmt.Errorf("spoof: --from %q: %w", f, err)
				}
				if err := spoof.Send(cmd.Context(), proto, src, dst); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&from, "from", nil, "forged source address (repeatable)")
	cmd.Flags().StringVar(&proto, "proto", "udp", "tcp (one SYN) or udp (one datagram)")
	return cmd
}
