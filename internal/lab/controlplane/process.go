package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a daemon started by Start, or found again by Load from its
// recorded pid.
type process struct {
	Name    string `json:"name"`
	Pid     int    `json:"pid"`
	Binary  string `json:"binary"`
	LogFile string `json:"logFile"`

	exited chan struct{} // closed when our child has been waited for; nil after Load
	hold   chan struct{} // closed by stop to release the thread that forked it
}

// startProcess runs bin with args, stdout and stderr appended to logFile.
//
// Detached processes get their own session so they outlive the caller (the
// lab's `up` returns while they keep running). Attached ones die with the
// caller (Pdeathsig), so a crashed test leaves no daemon behind; Pdeathsig
// fires when the forking *thread* exits, so the fork happens on a locked
// thread that is kept until the process is stopped.
func startProcess(name, bin string, args []string, logFile string, detach bool) (*process, error) {
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	defer log.Close()
	// Record the path /proc/PID/exe will show, to recognise the process later.
	if real, err := filepath.EvalSymlinks(bin); err == nil {
		bin = real
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	p := &process{Name: name, Binary: bin, LogFile: logFile, exited: make(chan struct{}), hold: make(chan struct{})}
	if detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		go func() {
			cmd.Wait()
			close(p.exited)
		}()
		if !detach {
			<-p.hold
		}
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.Pid = cmd.Process.Pid
	return p, nil
}

// running reports whether the process is still alive (a zombie is not).
func (p *process) running() bool {
	if p.exited != nil {
		select {
		case <-p.exited:
			return false
		default:
			return true
		}
	}
	return PidAlive(p.Pid, p.Binary)
}

// PidAlive reports whether pid is a live (non-zombie) process and, if bin is
// not empty, runs bin, so a recycled pid is never mistaken for ours. The
// lab's own daemons are recognised the same way.
func PidAlive(pid int, bin string) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may hold spaces.
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
		return false
	}
	if bin == "" {
		return true
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return err == nil && strings.TrimSuffix(exe, " (deleted)") == bin
}

// stop sends SIGTERM, then SIGKILL after grace, and waits until the process
// is gone.
func (p *process) stop(grace time.Duration) error {
	if p.hold != nil {
		defer func() {
			select {
			case <-p.hold:
			default:
				close(p.hold)
			}
		}()
	}
	if !p.running() {
		return nil
	}
	syscall.Kill(p.Pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for p.running() {
		if time.Now().After(deadline) {
			syscall.Kill(p.Pid, syscall.SIGKILL)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	deadline = time.Now().Add(10 * time.Second)
	for p.running() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (pid %d) did not exit", p.Name, p.Pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// logTail returns the last lines of the process's log, for error messages.
func (p *process) logTail() string {
	data, err := os.ReadFile(p.LogFile)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// freePort asks the kernel for an unused loopback TCP port. Another process
// could take it before the daemon binds it; the daemon then fails to start
// and Start reports it.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("find a free port: not a TCP address")
	}
	return addr.Port, nil
}
