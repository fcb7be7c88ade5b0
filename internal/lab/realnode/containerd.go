// Package realnode is the lab's real node stack (flock-lab up
// --runtime=real): per node a containerd with runc, a kubelet and a
// kube-proxy, each with its own directories and configuration. This file
// and its neighbours render those configurations (pure); the lab starts the
// processes.
package realnode

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Containerd is one node's containerd: everything of its own under Dir.
type Containerd struct {
	Dir         string // root, state, socket, config
	CNIBinDir   string // where containerd's CRI plugin finds flock and portmap
	CNIConfDir  string // the node's conflist (flock, portmap)
	SandboxName string // the locally imported sandbox image
}

// Paths of a node's containerd.
func (c Containerd) Root() string       { return filepath.Join(c.Dir, "root") }
func (c Containerd) State() string      { return filepath.Join(c.Dir, "state") }
func (c Containerd) Socket() string     { return filepath.Join(c.Dir, "containerd.sock") }
func (c Containerd) ConfigFile() string { return filepath.Join(c.Dir, "config.toml") }

// Config renders containerd 1.6's config (version 2). The CRI plugin runs
// runc with cgroupfs (no systemd here), the node's CNI config, the local
// sandbox image (no registry is reachable) and its streaming server on the
// node namespace's loopback, where kubelet, which proxies exec, runs too.
// Machines without CAP_SYS_RESOURCE (this one) need restrict_oom_score_adj.
func (c Containerd) Config() string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, `version = 2
root = %s
state = %s
# Only what a CRI node needs: no aufs/btrfs/zfs/devmapper attempts.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %s

[ttrpc]
  address = %s

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = %s

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %s
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # No CAP_SYS_RESOURCE here: an oom_score_adj below containerd's own
  # (the sandbox's -998) fails runc create.
  restrict_oom_score_adj = true
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %s
    conf_dir = %s
    max_conf_num = 1
`, q(c.Root()), q(c.State()), q(c.Socket()), q(c.Socket()+".ttrpc"), q(filepath.Join(c.Dir, "opt")),
		q(c.SandboxName), q(c.CNIBinDir), q(c.CNIConfDir))
	return b.String()
}
