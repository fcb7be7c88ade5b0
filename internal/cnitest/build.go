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
// dir, from the module that contains this package, as deploy/Dockerfile
// builds the image's: static (CGO_ENABLED=0), -trimpath, without symbol
// tables. The benchmarks measure those binaries, so their memory is the
// shipped agent's (a cgo build also maps the C library).
func BuildBinaries(dir string) error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	pkgs := append([]string{"./cmd/flock", "./cmd/flock-agent", "./cmd/flockctl"}, referencePlugins...)
	cmd := exec.Command("go", append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", dir + "/"}, pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %v: %w", pkgs, err)
	}
	return nil
}
