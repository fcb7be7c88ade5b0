package main

import (
	"errors"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fritzlab/flock/internal/lab"
)

// inNetnsCmd makes a command `USE -- CMD...` that runs CMD in the network
// namespace resolve finds for its target argument (none when target is
// false). Flags after the target belong to CMD.
func inNetnsCmd(use, short string, target bool, resolve func(cmd *cobra.Command, l *lab.Lab, target string) (string, error), opts *lab.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Flag parsing stops at the target (CMD's flags are CMD's), so a
			// "--" after it arrives as an argument.
			var name string
			if target {
				if len(args) == 0 || args[0] == "--" {
					return errors.New("missing target: " + use)
				}
				name, args = args[0], args[1:]
			}
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			if len(args) == 0 {
				return errors.New("missing command: " + use)
			}
			l, err := lab.Load(*opts)
			if err != nil {
				return err
			}
			if use == execUse && l.Real() {
				return criExec(cmd, l, name, args)
			}
			netns, err := resolve(cmd, l, name)
			if err != nil {
				return err
			}
			return run(lab.NetnsCommand(cmd.Context(), netns, args...))
		},
	}
	cmd.Flags().SetInterspersed(false)
	return cmd
}

const execUse = "exec NAMESPACE/POD -- CMD..."

func execCmd(opts *lab.Options) *cobra.Command {
	return inNetnsCmd(execUse, "Run CMD in a pod (its container through the CRI with --runtime=real, else its network namespace)", true,
		func(cmd *cobra.Command, l *lab.Lab, target string) (string, error) {
			ns, pod := podTarget(target)
			return l.PodNetns(cmd.Context(), ns, pod)
		}, opts)
}

func podTarget(target string) (namespace, pod string) {
	ns, pod, ok := strings.Cut(target, "/")
	if !ok {
		return "default", target
	}
	return ns, pod
}

// criExec runs CMD in the pod's first container through its node's CRI and
// exits with CMD's status.
func criExec(cmd *cobra.Command, l *lab.Lab, target string, args []string) error {
	ns, pod := podTarget(target)
	stdout, stderr, code, err := l.Exec(cmd.Context(), ns, pod, "", args)
	if err != nil {
		return err
	}
	os.Stdout.Write(stdout)
	os.Stderr.Write(stderr)
	if code != 0 {
		os.Exit(code)
	}
	return nil
}

func nodeCmd(opts *lab.Options) *cobra.Command {
	return inNetnsCmd("node NODE -- CMD...", "Run CMD in a node's network namespace", true,
		func(_ *cobra.Command, l *lab.Lab, target string) (string, error) {
			return l.NodeNetns(target)
		}, opts)
}

func routerCmd(opts *lab.Options) *cobra.Command {
	return inNetnsCmd("router -- CMD...", "Run CMD in the upstream router's network namespace", false,
		func(_ *cobra.Command, l *lab.Lab, _ string) (string, error) {
			return l.Router, nil
		}, opts)
}
