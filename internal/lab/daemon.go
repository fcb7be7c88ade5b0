package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/nsnet"
)

// A daemon is a long-running process of the lab (apiproxy, each node's agent
// and kubelet-lite). It runs in its own session, so it outlives `flock-lab
// up`, logs to RunDir/logs/NAME.log and is recorded in RunDir/pids/NAME.pid
// as "PID EXE", which Down uses to stop it.
type daemon struct {
	Name  string
	Netns string // "" = the root namespace
	Args  []string
	// Caps, when set, are the only capabilities it runs with (withCaps).
	Caps []string
	Exe  string // what /proc/PID/exe shows when Args[0] execs another binary; "" = Args[0]
}

func (l *Lab) startDaemon(d daemon) (int, error) {
	for _, dir := range []string{l.logDir(), l.pidDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, fmt.Errorf("start %s: %w", d.Name, err)
		}
	}
	logFile := filepath.Join(l.logDir(), d.Name+".log")
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", d.Name, err)
	}
	defer log.Close()
	// Record the path /proc/PID/exe will show, to recognise the process later.
	if !strings.Contains(d.Args[0], "/") {
		if p, err := exec.LookPath(d.Args[0]); err == nil {
			d.Args[0] = p
		}
	}
	if real, err := filepath.EvalSymlinks(d.Args[0]); err == nil {
		d.Args[0] = real
	}
	args := d.Args
	if d.Caps != nil {
		args = withCaps(d.Caps, args)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// nsnet rather than `ip netns exec`: the daemon must stay in the root
	// mount namespace, where kubelet-lite's pod namespaces are mounted.
	if err := nsnet.Start(d.Netns, cmd); err != nil {
		return 0, fmt.Errorf("start %s: %w", d.Name, err)
	}
	pid := cmd.Process.Pid
	// Reap it if it dies while we still run; afterwards init does.
	go cmd.Wait()
	exe := d.Args[0]
	if d.Exe != "" {
		exe = d.Exe
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
	}
	if d.Exe != "" {
		// Until Args[0] has exec'ed the binary it starts, the pid is not
		// recognised as the daemon's.
		deadline := time.Now().Add(10 * time.Second)
		for !controlplane.PidAlive(pid, exe) && controlplane.PidAlive(pid, "") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	record := fmt.Sprintf("%d %s\n", pid, exe)
	if err := os.WriteFile(filepath.Join(l.pidDir(), d.Name+".pid"), []byte(record), 0o644); err != nil {
		return pid, fmt.Errorf("record %s: %w", d.Name, err)
	}
	return pid, nil
}

// daemonPid returns the pid of a recorded daemon that is still running.
func (o Options) daemonPid(name string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(o.pidDir(), name+".pid"))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || !controlplane.PidAlive(pid, f[1]) {
		return 0, false
	}
	return pid, true
}

// stopPids sends SIGTERM, waits up to grace, then SIGKILLs the rest and
// waits until they are gone.
func stopPids(pids []int, grace time.Duration) error {
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	killed := false
	for {
		var left []int
		for _, pid := range pids {
			if controlplane.PidAlive(pid, "") {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if killed {
				return fmt.Errorf("processes %v did not exit", left)
			}
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			killed = true
			deadline = time.Now().Add(10 * time.Second)
		}
		pids = left
		time.Sleep(50 * time.Millisecond)
	}
}

// pidsInNetns returns every process whose network namespace is one of the
// named ones: whatever the lab's nodes and pods still run, whoever started it.
func pidsInNetns(names []string) []int {
	inodes := map[string]bool{}
	for _, name := range names {
		var st syscall.Stat_t
		if err := syscall.Stat(nsnet.Path(name), &st); err == nil {
			inodes[fmt.Sprintf("net:[%d]", st.Ino)] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		link, err := os.Readlink("/proc/" + e.Name() + "/ns/net")
		if err == nil && inodes[link] {
			pids = append(pids, pid)
		}
	}
	return pids
}
