package realnode

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Kubelet is one node's kubelet: its directories, identity and runtime.
type Kubelet struct {
	Dir        string   // root dir, config, certificates, pod logs
	NodeName   string   // the Node it registers (--hostname-override)
	NodeIPs    []string // the node's addresses, IPv6 first (--node-ip, dual-stack)
	Kubeconfig string
	Runtime    string // containerd's socket
	// CgroupRoot is this kubelet's own cgroup parent: several kubelets on
	// one machine must not share /kubepods. It must exist in every v1
	// hierarchy before kubelet starts (kubelet checks it, see CgroupDirs).
	CgroupRoot string
}

func (k Kubelet) ConfigFile() string { return filepath.Join(k.Dir, "config.yaml") }
func (k Kubelet) RootDir() string    { return filepath.Join(k.Dir, "root") }
func (k Kubelet) LogsDir() string    { return filepath.Join(k.Dir, "pod-logs") }

// CgroupControllers are the cgroup v1 hierarchies kubelet's cgroupfs driver
// creates pod cgroups in (and checks cgroupRoot in).
var CgroupControllers = []string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd"}

// CgroupDirs are the directories CgroupRoot means under /sys/fs/cgroup.
func (k Kubelet) CgroupDirs() []string {
	var dirs []string
	for _, c := range CgroupControllers {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", c, k.CgroupRoot))
	}
	return dirs
}

// Config renders the KubeletConfiguration. What this machine needs (see the
// README's notes on the real node stack):
//   - cgroupDriver cgroupfs and failCgroupV1 false: cgroup v1, no systemd;
//   - cgroupRoot of its own per node;
//   - failSwapOn false, and eviction thresholds near zero: the machine is
//     shared with other work, a lab node must not evict for its sake;
//   - image GC off: the lab's images are imported, never pulled back;
//   - protectKernelDefaults true: kubelet must not rewrite the machine's
//     vm.overcommit_memory, kernel.panic and kernel.panic_on_oops (global,
//     not per namespace); the lab runs it in a mount namespace where those
//     read the values it wants (Sysctls);
//   - anonymous, AlwaysAllow on the kubelet port: only the lab reaches it.
func (k Kubelet) Config() string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupRoot: %q
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
containerRuntimeEndpoint: %q
podLogsDir: %q
failSwapOn: false
protectKernelDefaults: true
registerNode: true
address: "::"
port: 10250
readOnlyPort: 0
healthzBindAddress: "127.0.0.1"
healthzPort: 10248
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
evictionPressureTransitionPeriod: 5s
localStorageCapacityIsolation: false
serializeImagePulls: false
maxPods: 250
nodeStatusUpdateFrequency: 10s
nodeStatusReportFrequency: 1m
syncFrequency: 10s
fileCheckFrequency: 10s
httpCheckFrequency: 10s
shutdownGracePeriod: 0s
resolvConf: ""
`, k.CgroupRoot, "unix://"+k.Runtime, k.LogsDir())
	return b.String()
}

// Args are kubelet's command line.
func (k Kubelet) Args(bin string) []string {
	return []string{bin,
		"--config=" + k.ConfigFile(),
		"--kubeconfig=" + k.Kubeconfig,
		"--root-dir=" + k.RootDir(),
		"--cert-dir=" + filepath.Join(k.Dir, "pki"),
		"--hostname-override=" + k.NodeName,
		"--node-ip=" + strings.Join(k.NodeIPs, ","),
		"--v=1",
	}
}

// Sysctls are the machine-wide settings kubelet's container manager wants
// (pkg/kubelet/cm setupKernelTunables) and would otherwise write: the lab
// shows them to kubelet alone, bind-mounted in its own mount namespace.
var Sysctls = map[string]string{
	"vm/overcommit_memory": "1",
	"vm/panic_on_oom":      "0",
	"kernel/panic":         "10",
	"kernel/panic_on_oops": "1",
}
