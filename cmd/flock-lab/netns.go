package main

import (
	"errors"
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

func execCmd(opts *lab.Options) *cobra.Command {
	return inNetnsCmd("exec NAMESPACE/POD -- CMD...", "Run CMD in a pod's network namespace", true,
		func(cmd *cobra.Command, l *lab.Lab, target string) (string, error) {
			ns, pod, ok := strings.Cut(target, "/")
			if !ok {
				ns, pod = "default", target
			}
			return l.PodNetns(cmd.Context(), ns, pod)
		}, opts)
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
