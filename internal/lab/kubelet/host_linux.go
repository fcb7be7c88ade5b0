package kubelet

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containernetworking/plugins/pkg/ns"
)

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/run/netns"

// host is how kubelet-lite reaches the kernel: named network namespaces,
// processes inside them, and sockets opened from the node's namespace.
type host struct {
	ip        string // path of the ip binary
	nsenter   string // path of nsenter, for host-network pods with nodeNetns
	nodeNetns string // the node's namespace path, "" for the calling one
}

func newHost(nodeNetns string) (*host, error) {
	ip, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("find ip (iproute2): %w", err)
	}
	if err := checkNetnsPropagation(); err != nil {
		return nil, err
	}
	h := &host{ip: ip, nodeNetns: nodeNetns}
	if nodeNetns != "" {
		if h.nsenter, err = exec.LookPath("nsenter"); err != nil {
			return nil, fmt.Errorf("find nsenter (util-linux): %w", err)
		}
	}
	return h, nil
}

// checkNetnsPropagation refuses to run where /run/netns is a slave mount:
// that is what `ip netns exec` gives a process, and a pod namespace
// mounted there would never reach the agent, `flock-lab exec` or anyone
// else outside. (Entering the machine's own mount namespace instead is not
// possible from a threaded process, and pid 1's may not be open to us.)
func checkNetnsPropagation() error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || f[4] != netnsDir {
			continue
		}
		var shared, slave bool
		for _, opt := range f[6:] {
			if opt == "-" {
				break
			}
			shared = shared || strings.HasPrefix(opt, "shared:")
			slave = slave || strings.HasPrefix(opt, "master:")
		}
		if slave && !shared {
			return fmt.Errorf("%s is a slave mount here (started with `ip netns exec`?): pod namespaces made here would be invisible outside; "+
				"enter the node's namespace with `nsenter --net=/run/netns/NODE` instead, or set NodeNetns", netnsDir)
		}
	}
	return nil
}

// netnsCmd runs `ip netns ARGS…`.
func (h *host) netnsCmd(args ...string) ([]byte, error) {
	out, err := exec.Command(h.ip, append([]string{"netns"}, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ip netns %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// netnsPath is the path of a named namespace.
func netnsPath(name string) string { return filepath.Join(netnsDir, name) }

// netnsLive says whether name is a mounted network namespace (a file left
// behind without its mount is not).
func netnsLive(name string) bool {
	h, err := ns.GetNS(netnsPath(name))
	if err != nil {
		return false
	}
	h.Close()
	return true
}

// createNetns creates a named namespace with its loopback up; an existing
// live one is kept (a retry, or a pod adopted after a restart).
func (h *host) createNetns(name string) error {
	if !netnsLive(name) {
		if _, err := os.Stat(netnsPath(name)); err == nil {
			_, _ = h.netnsCmd("delete", name) // a stale file without a namespace
		}
		if _, err := h.netnsCmd("add", name); err != nil {
			return fmt.Errorf("create netns %s: %w", name, err)
		}
	}
	// ip -n NAME link set lo up
	if out, err := exec.Command(h.ip, "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("set lo up in netns %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// deleteNetns removes a named namespace; one already gone is fine.
func (h *host) deleteNetns(name string) error {
	if _, err := os.Stat(netnsPath(name)); os.IsNotExist(err) {
		return nil
	}
	if out, err := h.netnsCmd("delete", name); err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// inNode runs f on a thread in the node's namespace (a no-op wrapper when
// kubelet-lite already runs there), so CNI plugins libcni executes, and
// sockets f opens, belong to the node.
func (h *host) inNode(f func() error) error {
	if h.nodeNetns == "" {
		return f()
	}
	n, err := ns.GetNS(h.nodeNetns)
	if err != nil {
		return fmt.Errorf("open node netns %s: %w", h.nodeNetns, err)
	}
	defer n.Close()
	return n.Do(func(ns.NetNS) error { return f() })
}

// dial connects from the node's namespace (a socket keeps the namespace it
// was created in), as kubelet's probes connect from the host to a pod.
func (h *host) dial(ctx context.Context, network, addr string) (c net.Conn, err error) {
	var d net.Dialer
	err = h.inNode(func() error {
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// command builds a process in a pod's namespace (`ip netns exec`, which
// also gives it a /sys of that namespace), or in the node's for a
// host-network pod. It gets its own process group, so stopping it reaches
// whatever it spawned, and dies with kubelet-lite (Pdeathsig).
func (h *host) command(netns string, argv, env []string, dir string) *exec.Cmd {
	switch {
	case netns != "":
		argv = append([]string{h.ip, "netns", "exec", netns}, argv...)
	case h.nodeNetns != "":
		argv = append([]string{h.nsenter, "--net=" + h.nodeNetns, "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if netns == "" && h.nodeNetns == "" {
		// exec.Command resolved argv[0] with kubelet-lite's PATH; the
		// container's PATH (BinDir first) decides, as it does under ip.
		if p, err := lookPathIn(argv[0], env); err == nil {
			cmd.Path, cmd.Err = p, nil
		}
	}
	cmd.Env, cmd.Dir = env, dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// lookPathIn resolves a command name with the PATH of env.
func lookPathIn(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path, _ := envLookup(env)("PATH")
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH %s", name, path)
}

// signalGroup signals a process group; a group already gone is fine.
func signalGroup(pid int, sig syscall.Signal) {
	if pid > 0 {
		_ = syscall.Kill(-pid, sig)
	}
}

// procStartTime is a process's start time in clock ticks since boot
// (field 22 of /proc/PID/stat), which tells a recorded process from a later
// one that reused its pid.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
