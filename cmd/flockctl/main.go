// Command flockctl shows an operator the state of one node as its
// flock-agent knows it: allocations, BGP sessions, anycast routes and
// NetworkPolicy. It reads the agent's read-only admin API on a unix socket
// (flock-agent --admin-socket), so it runs on the node, or in the agent's
// pod: kubectl -n flock-system exec ds/flock-agent -c agent -- flockctl status.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fritzlab/flock/pkg/admin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "flockctl:", err)
		os.Exit(1)
	}
}

// options are the flags every command shares.
type options struct {
	socket  string
	output  string
	timeout time.Duration
}

func newRoot(out io.Writer) *cobra.Command {
	var o options
	root := &cobra.Command{
		Use:   "flockctl",
		Short: "Show the state of a node's flock-agent: allocations, BGP sessions, anycast routes, Service addresses, NetworkPolicy",
		Long: "flockctl reads the read-only admin API of the flock-agent on this node (its unix socket,\n" +
			"flock-agent --admin-socket) and prints what the agent knows. Every command prints a table,\n" +
			"or with -o json the agent's JSON as it is.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	pf.StringVar(&o.socket, "socket", admin.DefaultSocket, "the agent's admin socket")
	pf.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the agent")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if o.output != "table" && o.output != "json" {
			return fmt.Errorf("-o %q: want table or json", o.output)
		}
		return nil
	}
	root.AddCommand(
		command(&o, "status", "The node at a glance: pools, allocations, BGP, anycast, NetworkPolicy", admin.PathStatus, printStatus),
		command(&o, "pods", "The pods attached on this node, with their addresses", admin.PathAllocations, printPods),
		command(&o, "bgp", "BIRD's BGP sessions with the node's peers", admin.PathBGP, printBGP),
		command(&o, "anycast", "Anycast addresses of local pods: routed, announced, next hops", admin.PathAnycast, printAnycast),
		command(&o, "policy", "NetworkPolicy of each local pod as last applied", admin.PathPolicy, printPolicy),
		command(&o, "services", "LoadBalancer Service addresses: announced by this node or not, and why", admin.PathServices, printServices),
	)
	root.AddCommand(opsCommands(&o)...)
	return root
}

// command reads path and prints it with print (a table), or as JSON. A
// print that returns an error (BIRD unreachable) has printed what it could.
func command[T any](o *options, use, short, path string, print func(io.Writer, *T) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return get(cmd, o, path, print) },
	}
}

// get reads path and prints it with print, or as JSON.
func get[T any](cmd *cobra.Command, o *options, path string, print func(io.Writer, *T) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	body, err := admin.NewClient(o.socket, o.timeout).Raw(ctx, path)
	if err != nil {
		var re *admin.ReachError
		if errors.As(err, &re) && errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w (is flock-agent running on this node? give its --admin-socket with --socket)", err)
		}
		return err
	}
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("decode the agent's answer to GET %s: %w", path, err)
	}
	if o.output == "json" {
		var b bytes.Buffer
		if err := json.Indent(&b, body, "", "  "); err != nil {
			return err
		}
		if _, err := cmd.OutOrStdout().Write(append(bytes.TrimRight(b.Bytes(), "\n"), '\n')); err != nil {
			return err
		}
		// doctor's exit status holds in JSON too.
		return print(io.Discard, &v)
	}
	return print(cmd.OutOrStdout(), &v)
}
