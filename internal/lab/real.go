package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/image"
	"github.com/fritzlab/flock/internal/lab/realnode"
)

// Runtimes a lab's nodes can run (Options.Runtime).
const (
	// RuntimeLite is kubelet-lite and the lab's Service proxy stand-in.
	RuntimeLite = "lite"
	// RuntimeReal is the real node stack: per node containerd with runc,
	// kubelet and kube-proxy (nftables mode), plus kube-controller-manager
	// and kube-scheduler beside the API server.
	RuntimeReal = "real"
)

// real reports whether the lab runs the real node stack.
func (o Options) real() bool { return o.Runtime == RuntimeReal }

func (o Options) checkRuntime() error {
	switch o.Runtime {
	case RuntimeLite, RuntimeReal:
		return nil
	}
	return fmt.Errorf("lab: runtime %q, want %q or %q", o.Runtime, RuntimeLite, RuntimeReal)
}

// RealPackages are the Debian packages the real node stack adds.
var RealPackages = []string{"containerd", "runc", "busybox-static"}

// egressSocket is where the API server's egress proxy listens (kubectl
// exec, logs: the API server to the kubelets in the node namespaces).
func (o Options) egressSocket() string { return filepath.Join(o.RunDir, "egress.sock") }

func (o Options) imageDir() string { return filepath.Join(o.StateDir, "image") }

// KubeBinaries are the built upstream components of a real-runtime lab.
type KubeBinaries struct {
	Kubelet           string `json:"kubelet"`
	KubeProxy         string `json:"kubeProxy"`
	ControllerManager string `json:"controllerManager"`
	Scheduler         string `json:"scheduler"`
}

// buildReal builds (or finds cached) the node components and the lab's
// image tarball.
func (l *Lab) buildReal(ctx context.Context, source string) error {
	bins := map[string]*string{
		controlplane.Kubelet.Name:           &l.Kube.Kubelet,
		controlplane.KubeProxy.Name:         &l.Kube.KubeProxy,
		controlplane.ControllerManager.Name: &l.Kube.ControllerManager,
		controlplane.Scheduler.Name:         &l.Kube.Scheduler,
	}
	for _, c := range controlplane.NodeComponents {
		bin, err := controlplane.BuildComponent(ctx, l.CacheDir, c, l.Log)
		if err != nil {
			return err
		}
		*bins[c.Name] = bin
	}
	l.logf("building the lab's image (static flock-lab and busybox)")
	return buildImage(ctx, source, l.imageDir())
}

// ImageTarball is the OCI tarball every node's containerd imports.
func (o Options) ImageTarball() string { return filepath.Join(o.imageDir(), "lab.tar") }

// buildImage builds a static flock-lab and writes the image tarball.
func buildImage(ctx context.Context, source, dir string) error {
	goBin, err := controlplane.GoTool()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	bin := filepath.Join(dir, "flock-lab")
	cmd := exec.CommandContext(ctx, goBin, "build", "-buildvcs=false", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/flock-lab")
	cmd.Dir = source
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build static flock-lab: %w\n%s", err, out)
	}
	f, err := os.Create(filepath.Join(dir, "lab.tar"))
	if err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	defer f.Close()
	if err := image.Write(f, image.Inputs{FlockLab: bin, Busybox: "/bin/busybox"}); err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	return f.Close()
}

// startKubeControllers starts kube-controller-manager and kube-scheduler in the
// root namespace, beside the API server.
func (l *Lab) startKubeControllers(ctx context.Context) error {
	policy, err := realnode.WriteAdmission(l.StateDir)
	if err != nil {
		return err
	}
	if err := controlplane.ApplyFiles(ctx, l.cp.RESTConfig(), policy); err != nil {
		return err
	}
	for _, d := range []daemon{
		{Name: "kube-controller-manager", Args: realnode.ControllerManagerArgs(l.Kube.ControllerManager, l.Kubeconfig)},
		{Name: "kube-scheduler", Args: realnode.SchedulerArgs(l.Kube.Scheduler, l.Kubeconfig)},
	} {
		if _, err := l.startDaemon(d); err != nil {
			return err
		}
	}
	return nil
}

// containerd, kubelet and kube-proxy of a node.
func (n Node) containerd(l *Lab) realnode.Containerd {
	return realnode.Containerd{
		Dir:         filepath.Join(n.Dir, "containerd"),
		CNIBinDir:   l.BinDir,
		CNIConfDir:  filepath.Dir(n.CNIConfList),
		SandboxName: image.Pause,
	}
}

// containerdDaemon runs the node's containerd in its namespace (and the
// root mount namespace, where its pod namespaces must be seen by the agent).
func (n Node) containerdDaemon(l *Lab) daemon {
	return daemon{Name: n.Name + "-containerd", Netns: n.Netns, Args: []string{"containerd", "--config", n.containerd(l).ConfigFile()}}
}

func (n Node) kubelet(l *Lab) realnode.Kubelet {
	return realnode.Kubelet{
		Dir:        filepath.Join(n.Dir, "kubelet"),
		NodeName:   n.Name,
		NodeIPs:    []string{n.Addr6.Addr().String(), n.Addr4.Addr().String()},
		Kubeconfig: n.KubeletKubeconfig,
		Runtime:    n.containerd(l).Socket(),
		CgroupRoot: "/" + n.Netns,
	}
}

func (n Node) kubeProxy(l *Lab) realnode.KubeProxy {
	return realnode.KubeProxy{
		Dir:          filepath.Join(n.Dir, "kube-proxy"),
		NodeName:     n.Name,
		Kubeconfig:   n.KubeletKubeconfig,
		ClusterCIDRs: []string{ClusterPool6, ClusterPool4},
	}
}

// Every node's pool is inside these (topology's 2001:db8:42:<i>::/64 and
// 198.18.<i>.0/24).
const (
	ClusterPool6 = "2001:db8:42::/48"
	ClusterPool4 = "198.18.0.0/16"
)

// realDaemons are the per-node daemons of the real runtime, in start order.
func realDaemons(name string) []string {
	return []string{name + "-containerd", name + "-kubelet", name + "-kube-proxy"}
}

// startRealNode starts a node's containerd, imports the lab's image into
// it, then starts kubelet and kube-proxy.
func (l *Lab) startRealNode(ctx context.Context, n Node) error {
	ctd := n.containerd(l)
	for _, dir := range []string{ctd.Dir, ctd.Root(), ctd.State()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	if err := os.WriteFile(ctd.ConfigFile(), []byte(ctd.Config()), 0o644); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if _, err := l.startDaemon(n.containerdDaemon(l)); err != nil {
		return err
	}
	if err := l.waitContainerd(ctx, n); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "ctr", "--address", ctd.Socket(), "-n", "k8s.io", "images", "import", l.ImageTarball()).CombinedOutput(); err != nil {
		return fmt.Errorf("node %s: import the lab's image: %w\n%s", n.Name, err, out)
	}

	kl := n.kubelet(l)
	for _, dir := range append([]string{kl.Dir, kl.RootDir(), kl.LogsDir()}, kl.CgroupDirs()...) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	if err := os.WriteFile(kl.ConfigFile(), []byte(kl.Config()), 0o644); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	kubeletArgs := append([]string{l.flockLab(), "kubelet-exec", "--sysctl-dir", filepath.Join(kl.Dir, "sysctl"), "--"}, kl.Args(l.Kube.Kubelet)...)
	if _, err := l.startDaemon(daemon{Name: n.Name + "-kubelet", Netns: n.Netns, Args: kubeletArgs, Exe: l.Kube.Kubelet}); err != nil {
		return err
	}
	kp := n.kubeProxy(l)
	if err := os.MkdirAll(kp.Dir, 0o755); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := os.WriteFile(kp.ConfigFile(), []byte(kp.Config()), 0o644); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	_, err := l.startDaemon(daemon{Name: n.Name + "-kube-proxy", Netns: n.Netns, Args: kp.Args(l.Kube.KubeProxy)})
	return err
}

// downReal removes the real runtime's pods before the daemons stop: every
// sandbox through each node's CRI (containerd calls CNI DEL, so the agents
// must still run), after kubelet has stopped so it starts none again. It
// finds the nodes by their containerd sockets, so it needs no lab state.
func (o Options) downReal(ctx context.Context) error {
	socks, _ := filepath.Glob(filepath.Join(o.RunDir, "nodes", "*", "containerd", "containerd.sock"))
	var errs []string
	for _, sock := range socks {
		name := filepath.Base(filepath.Dir(filepath.Dir(sock)))
		if _, ok := o.daemonPid(name + "-containerd"); !ok {
			continue
		}
		cri, err := realnode.DialCRI(sock)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := cri.RemoveAll(ctx); err != nil {
			errs = append(errs, fmt.Sprintf("node %s: %v", name, err))
		}
		cancel()
		cri.Close()
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove pods: %s", strings.Join(errs, "; "))
	}
	return nil
}

// removeCgroups removes the kubelets' cgroup roots (/sys/fs/cgroup/*/
// PREFIX-node-*), deepest first: a cgroup directory goes only when it has
// no processes and no children.
func (o Options) removeCgroups() error {
	roots, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", o.Prefix+"-node-*"))
	var errs []string
	for _, root := range roots {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove cgroups: %s", strings.Join(errs, "; "))
	}
	return nil
}

// nodeCRI connects to a node's containerd.
func (l *Lab) nodeCRI(node string) (*realnode.CRI, error) {
	n, ok := l.Node(node)
	if !ok {
		return nil, fmt.Errorf("no node %q in the lab", node)
	}
	return realnode.DialCRI(n.containerd(l).Socket())
}

// Exec runs cmd in a pod's first (or named) container through its node's
// CRI, as `crictl exec` does, and returns its output and exit code. Only
// for RuntimeReal; kubelet-lite's pods are host processes (NetnsCommand).
func (l *Lab) Exec(ctx context.Context, namespace, pod, container string, cmd []string) (stdout, stderr []byte, code int, err error) {
	if !l.real() {
		return nil, nil, 0, fmt.Errorf("exec through the CRI needs --runtime=real")
	}
	p, err := l.getPod(ctx, namespace, pod)
	if err != nil {
		return nil, nil, 0, err
	}
	cri, err := l.nodeCRI(p.Spec.NodeName)
	if err != nil {
		return nil, nil, 0, err
	}
	defer cri.Close()
	ct, err := cri.PodContainer(ctx, namespace, pod, container)
	if err != nil {
		return nil, nil, 0, err
	}
	out, errOut, c, err := cri.Exec(ctx, ct.Id, cmd, 0)
	return out, errOut, int(c), err
}

// criStatus asks a node's containerd for the CRI's conditions: "ok" when
// RuntimeReady and NetworkReady (the CNI config loaded) hold.
func (l *Lab) criStatus(ctx context.Context, node string) string {
	cri, err := l.nodeCRI(node)
	if err != nil {
		return err.Error()
	}
	defer cri.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cri.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return err.Error()
	}
	var bad []string
	for _, c := range resp.GetStatus().GetConditions() {
		if !c.Status {
			bad = append(bad, c.Type+": "+c.Reason+" "+c.Message)
		}
	}
	if len(bad) > 0 {
		return strings.Join(bad, "; ")
	}
	return "ok"
}

// Sandboxes lists a node's pod sandboxes as containerd's CRI has them
// (crictl pods): "namespace/name STATE" each.
func (l *Lab) Sandboxes(ctx context.Context, node string) ([]string, error) {
	cri, err := l.nodeCRI(node)
	if err != nil {
		return nil, err
	}
	defer cri.Close()
	boxes, err := cri.Sandboxes(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range boxes {
		out = append(out, b.Metadata.Namespace+"/"+b.Metadata.Name+" "+b.State.String())
	}
	return out, nil
}

// RestartContainerd stops a node's containerd (SIGTERM; its shims and the
// containers keep running, as on a real node) and starts it again with the
// same configuration.
func (l *Lab) RestartContainerd(ctx context.Context, node string) error {
	n, ok := l.Node(node)
	if !ok {
		return fmt.Errorf("no node %q in the lab", node)
	}
	name := n.Name + "-containerd"
	if pid, ok := l.daemonPid(name); ok {
		if err := stopPids([]int{pid}, 10*time.Second); err != nil {
			return err
		}
	}
	if _, err := l.startDaemon(n.containerdDaemon(l)); err != nil {
		return err
	}
	return l.waitContainerd(ctx, n)
}

func (l *Lab) waitContainerd(ctx context.Context, n Node) error {
	sock := n.containerd(l).Socket()
	return poll(ctx, 30*time.Second, func() error {
		if _, ok := l.daemonPid(n.Name + "-containerd"); !ok {
			return l.exited(n.Name + "-containerd")
		}
		return exec.CommandContext(ctx, "ctr", "--address", sock, "version").Run()
	}, n.Name+"'s containerd")
}
