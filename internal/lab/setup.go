package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/fritzlab/flock/internal/lab/controlplane"
)

// ensurePackages installs the Debian packages that are missing, running
// apt-get update first only when something must be installed.
func ensurePackages(ctx context.Context, log io.Writer, pkgs []string) error {
	var missing []string
	for _, p := range pkgs {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${db:Status-Status}", p).Output()
		if err != nil || strings.TrimSpace(string(out)) != "installed" {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(log, "installing Debian packages: %s\n", strings.Join(missing, " "))
	for _, args := range [][]string{{"update", "-q"}, append([]string{"install", "-y", "-q"}, missing...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", args[0], err, out)
		}
	}
	return nil
}

// Binaries the lab builds into its bin directory: the product (flockctl
// reads each node's agent at <run dir>/nodes/<node>/admin.sock), the lab
// itself (daemons run `flock-lab apiproxy`, `flock-lab kubelet`; pods run
// `flock-lab serve`), and the reference portmap plugin at the version the
// project pins.
var binaries = []string{
	"./cmd/flock",
	"./cmd/flock-agent",
	"./cmd/flockctl",
	"./cmd/flock-controller",
	"./cmd/flock-lab",
	"github.com/containernetworking/plugins/plugins/meta/portmap",
	// containerd's CRI sets up each pod's lo with it (--runtime=real).
	"github.com/containernetworking/plugins/plugins/main/loopback",
}

// buildBinaries builds them from the source tree into dir. Not -trimpath:
// flock-lab finds the source tree (hack/kube-apiserver, deploy/) through the
// paths compiled into it.
func buildBinaries(ctx context.Context, source, dir string) error {
	goBin, err := controlplane.GoTool()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("build lab binaries: %w", err)
	}
	cmd := exec.CommandContext(ctx, goBin, append([]string{"build", "-buildvcs=false", "-o", dir + "/"}, binaries...)...)
	cmd.Dir = source
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(binaries, " "), err, out)
	}
	return nil
}
