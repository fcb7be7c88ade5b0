package realnode

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestKubeletConfig: the rendered KubeletConfiguration is YAML with what
// this machine needs (cgroupfs on cgroup v1, its own cgroup root and log
// dir, kernel defaults protected), and the sysctls shown to kubelet are
// the ones it would otherwise write.
func TestKubeletConfig(t *testing.T) {
	k := Kubelet{Dir: "/run/l/nodes/node-1/kubelet", NodeName: "node-1", NodeIPs: []string{"2001:db8::2", "198.51.100.2"},
		Kubeconfig: "/k", Runtime: "/run/l/c.sock", CgroupRoot: "/flk-lab-node-1"}
	var cfg map[string]any
	if err := yaml.UnmarshalStrict([]byte(k.Config()), &cfg); err != nil {
		t.Fatalf("kubelet config: %v\n%s", err, k.Config())
	}
	want := map[string]any{
		"kind": "KubeletConfiguration", "cgroupDriver": "cgroupfs", "failCgroupV1": false,
		"cgroupRoot": "/flk-lab-node-1", "protectKernelDefaults": true, "failSwapOn": false,
		"containerRuntimeEndpoint": "unix:///run/l/c.sock", "podLogsDir": "/run/l/nodes/node-1/kubelet/pod-logs",
	}
	for key, v := range want {
		if cfg[key] != v {
			t.Errorf("%s: %v, want %v", key, cfg[key], v)
		}
	}
	if got := k.CgroupDirs(); len(got) != len(CgroupControllers) || got[0] != "/sys/fs/cgroup/blkio/flk-lab-node-1" {
		t.Errorf("cgroup dirs %v", got)
	}
	args := strings.Join(k.Args("/bin/kubelet"), " ")
	if !strings.Contains(args, "--node-ip=2001:db8::2,198.51.100.2") || !strings.Contains(args, "--root-dir=/run/l/nodes/node-1/kubelet/root") {
		t.Errorf("kubelet args: %s", args)
	}
	for _, key := range []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"} {
		if Sysctls[key] == "" {
			t.Errorf("sysctl %s not shown to kubelet", key)
		}
	}
}

// TestContainerdConfig: every path of the node's containerd is its own, and
// the CRI plugin runs the node's CNI config with cgroupfs.
func TestContainerdConfig(t *testing.T) {
	c := Containerd{Dir: "/run/l/nodes/node-1/containerd", CNIBinDir: "/var/lib/l/bin", CNIConfDir: "/run/l/nodes/node-1/cni/net.d", SandboxName: "docker.io/library/p:latest"}
	conf := c.Config()
	for _, line := range []string{
		`root = "/run/l/nodes/node-1/containerd/root"`,
		`state = "/run/l/nodes/node-1/containerd/state"`,
		`address = "/run/l/nodes/node-1/containerd/containerd.sock"`,
		`sandbox_image = "docker.io/library/p:latest"`,
		`SystemdCgroup = false`,
		`restrict_oom_score_adj = true`,
		`bin_dir = "/var/lib/l/bin"`,
		`conf_dir = "/run/l/nodes/node-1/cni/net.d"`,
	} {
		if !strings.Contains(conf, line) {
			t.Errorf("containerd config lacks %s:\n%s", line, conf)
		}
	}
}
