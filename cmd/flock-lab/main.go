// Command flock-lab runs a Kubernetes lab on one machine: a real control
// plane, simulated nodes in network namespaces with the real flock-agent and
// CNI plugin, and a kubelet-lite per node. Run as root. The logic lives in
// internal/lab; this file only maps commands onto it.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/fritzlab/flock/internal/lab"
	"github.com/fritzlab/flock/internal/lab/controlplane"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		// A command run in a namespace failed: pass its status on.
		os.Exit(exit.ExitCode())
	case err != nil:
		fmt.Fprintln(os.Stderr, "flock-lab:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var opts lab.Options
	root := &cobra.Command{
		Use:           "flock-lab",
		Short:         "A Kubernetes lab with flock on one machine (run as root)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	pf.StringVar(&opts.Prefix, "prefix", "", "network namespace prefix (default flk-lab; for tests)")
	pf.StringVar(&opts.RunDir, "run-dir", "", "runtime directory (default /run/flock-lab; for tests)")
	pf.StringVar(&opts.StateDir, "state-dir", "", "state directory (default /var/lib/flock-lab; for tests)")
	for _, f := range []string{"prefix", "run-dir", "state-dir"} {
		pf.MarkHidden(f)
	}
	root.AddCommand(
		upCmd(&opts), downCmd(&opts), statusCmd(&opts), kubectlCmd(&opts),
		execCmd(&opts), nodeCmd(&opts), routerCmd(&opts),
		demoCmd(&opts), buildCmd(), buildNodeCmd(), serveCmd(), spoofCmd(), pauseCmd(), kubeletExecCmd(), kubeletCmd(), apiproxyCmd(), proxyCmd(),
	)
	return root
}

func upCmd(opts *lab.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a lab (removing any earlier one first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Up(cmd.Context(), *opts)
			if err != nil {
				return err
			}
			fmt.Printf(`
flock-lab is up: %d nodes, API server %s

  export KUBECONFIG=%s
  flock-lab kubectl get nodes -o wide
  flock-lab kubectl get pods -A -o wide
  flock-lab exec NAMESPACE/POD -- ping -c1 ADDRESS
  flock-lab node node-1 -- ip route
  flock-lab router -- ip route
  flock-lab status
  flock-lab down
`, len(l.Nodes), l.Server, l.Kubeconfig)
			return nil
		},
	}
	cmd.Flags().IntVar(&opts.Nodes, "nodes", 2, "number of nodes")
	cmd.Flags().BoolVar(&opts.SkipPackages, "skip-packages", false, "do not apt-get install missing Debian packages")
	cmd.Flags().BoolVar(&opts.ExplicitNodeConfigs, "explicit-nodeconfigs", false,
		"write each node's NodeConfig by hand (pools 2001:db8:42:<i>::/64 and 198.18.<i>.0/24, AS 65100+i) instead of a NodePool and flock-controller")
	cmd.Flags().StringVar(&opts.Runtime, "runtime", lab.RuntimeReal, "what runs the pods: real (containerd, kubelet, kube-proxy) or lite (kubelet-lite and a Service proxy stand-in, host processes)")
	return cmd
}

func demoCmd(opts *lab.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Create the example pods and check cross-node reachability",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(*opts)
			if err != nil {
				return err
			}
			return l.Demo(cmd.Context(), os.Stdout)
		},
	}
}

func buildCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "build-apiserver",
		Short: "Build and cache kube-apiserver now (up and the tests otherwise do it on first use)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := controlplane.Build(cmd.Context(), "", os.Stderr)
			if err == nil {
				fmt.Println(bin)
			}
			return err
		},
	}
}

func buildNodeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "build-node",
		Short: "Build and cache kubelet, kube-proxy, kube-controller-manager and kube-scheduler now (for --runtime=real)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, c := range controlplane.NodeComponents {
				bin, err := controlplane.BuildComponent(cmd.Context(), "", c, os.Stderr)
				if err != nil {
					return err
				}
				fmt.Println(bin)
			}
			return nil
		},
	}
}

func downCmd(opts *lab.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove the lab: processes, namespaces, links, files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return lab.Down(cmd.Context(), *opts)
		},
	}
}

func statusCmd(opts *lab.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the control plane and every node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(*opts)
			if err != nil {
				return err
			}
			return l.PrintStatus(cmd.Context(), os.Stdout)
		},
	}
}

func kubectlCmd(opts *lab.Options) *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl ARGS...",
		Short:              "Run kubectl with the lab's kubeconfig",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := lab.Load(*opts)
			if err != nil {
				return err
			}
			return run(l.KubectlCommand(cmd.Context(), args...))
		},
	}
}

// run runs c attached to the terminal.
func run(c *exec.Cmd) error {
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	return c.Run()
}
