package bgp

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Namespaces are named flk-bgp-PID-N, so that concurrent runs never meet;
// every process a test starts is its child and is stopped, and every
// namespace and folder removed, when the test ends.

// requireRoot skips for ordinary users, and when a tool is missing (CI
// installs bird2, frr and iproute2).
func requireRoot(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("interop test: needs root to create network namespaces (CI runs it as root)")
	}
	for _, tool := range append(tools, "ip") {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("interop test needs %s: apt-get install -y bird2 frr iproute2 (CI installs them)", tool)
		}
	}
}

func run(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			out = append(out, ee.Stderr...)
		}
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// tempDir is a folder that the frr user can read (t.TempDir's parent is
// root's alone).
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "flk-bgp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// daemon is a process the test started, stopped when the test ends; its
// output is shown when the test failed.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	out    bytes.Buffer
	mu     sync.Mutex
	exited chan struct{}
}

func (d *daemon) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.Write(p)
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// startDaemon runs args in namespace ns in the foreground.
func startDaemon(t *testing.T, name, ns string, args ...string) *daemon {
	t.Helper()
	d := &daemon{name: name, exited: make(chan struct{})}
	d.cmd = exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d, d
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(5 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("%s in %s:\n%s", name, ns, d.output())
		}
	})
	return d
}

// waitUntil polls ready until it is true, failing if d exits first or
// after 10 s.
func (d *daemon) waitUntil(t *testing.T, what string, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ready() {
		select {
		case <-d.exited:
			t.Fatalf("%s exited before %s:\n%s", d.name, what, d.output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s after 10 s:\n%s", d.name, what, d.output())
		}
	}
}

// startFRR runs zebra and bgpd with the given bgpd config as FRR instance
// ns (-N) in namespace ns.
func startFRR(t *testing.T, ns, bgpdConf string) *frr {
	t.Helper()
	u, err := user.Lookup("frr")
	if err != nil {
		t.Fatalf("no frr user: %v (apt-get install -y frr)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir := tempDir(t)
	// FRR's -N instance keeps its sockets in /var/run/frr/NS and vtysh reads
	// /etc/frr/NS; both must belong to frr.
	etc, runDir := filepath.Join("/etc/frr", ns), filepath.Join("/var/run/frr", ns)
	for _, d := range []string{etc, runDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	files := map[string]string{
		filepath.Join(dir, "zebra.conf"): "hostname router\n",
		filepath.Join(dir, "bgpd.conf"):  bgpdConf,
		filepath.Join(etc, "vtysh.conf"): "",
	}
	for path, content := range files {
		writeFile(t, path, []byte(content))
	}
	for _, path := range []string{dir, etc, runDir, filepath.Join(dir, "zebra.conf"), filepath.Join(dir, "bgpd.conf"), filepath.Join(etc, "vtysh.conf")} {
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	zebra := startDaemon(t, "zebra", ns, "/usr/lib/frr/zebra", "-N", ns,
		"-f", filepath.Join(dir, "zebra.conf"), "-i", filepath.Join(dir, "zebra.pid"), "-P", "0")
	zebra.waitUntil(t, "zserv.api", func() bool { _, err := os.Stat(filepath.Join(runDir, "zserv.api")); return err == nil })
	bgpd := startDaemon(t, "bgpd", ns, "/usr/lib/frr/bgpd", "-N", ns,
		"-f", filepath.Join(dir, "bgpd.conf"), "-i", filepath.Join(dir, "bgpd.pid"), "-P", "0")
	bgpd.waitUntil(t, "bgpd.vty", func() bool { _, err := os.Stat(filepath.Join(runDir, "bgpd.vty")); return err == nil })
	return &frr{ns: ns}
}
