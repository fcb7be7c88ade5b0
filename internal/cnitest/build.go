package cnitest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Reference plugins, built from the containernetworking/plugins module the
// project pins, so benchmarks and chaining tests use a known version.
var referencePlugins = []string{
	"github.com/containernetworking/plugins/plugins/main/ptp",
	"github.com/containernetworking/plugins/plugins/ipam/host-local",
	"github.com/containernetworking/plugins/plugins/meta/portmap",
}

// BuildBinaries builds flock, flock-agent, flockctl and the reference plugins into
// dir, from the module that contains this package.
func BuildBinaries(dir string) error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	pkgs := append([]string{"./cmd/flock", "./cmd/flock-agent", "./cmd/flockctl"}, referencePlugins...)
	cmd := exec.Command("go", append([]string{"build", "-trimpath", "-o", dir + "/"}, pkgs...)...)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %v: %w", pkgs, err)
	}
	return nil
}
