package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestModes: the CNI socket and the admin socket are root's, mode 0600;
// the allocations are root's, files 0600 in a 0700 directory (also when
// the directory existed with a looser mode). A non-root process in the
// node's namespace (uid and gid 65534, no groups) gets "Permission denied"
// on each, while it can read a world-readable file beside them, so the
// denial comes from flock's modes and not from the path to them.
func TestModes(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("needs setpriv (util-linux)")
	}
	if _, err := exec.LookPath("socat"); err != nil {
		t.Fatal("needs socat: apt-get install -y socat")
	}
	n := newNode(t)
	// t.TempDir is 0700: open the way to the node's files for everyone.
	for _, d := range []string{filepath.Dir(n.Dir), n.Dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	store := filepath.Join(n.Dir, "allocations")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := n.StartAgent(); err != nil {
		t.Fatal(err)
	}
	p := newPod(t, "default", "modes")
	add(t, n, conflist(t, n), p)

	files, _ := filepath.Glob(filepath.Join(store, "*.json"))
	if len(files) != 1 {
		t.Fatalf("allocation files %v, want one", files)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{n.Socket, os.ModeSocket | 0o600},
		{filepath.Join(n.Dir, "admin.sock"), os.ModeSocket | 0o600},
		{store, os.ModeDir | 0o700},
		{files[0], 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&(os.ModeType|os.ModePerm) != c.mode || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: mode %v owner %d:%d, want %v root:root", c.path, fi.Mode(), st.Uid, st.Gid, c.mode)
		}
	}

	nobody := func(args ...string) (string, error) {
		argv := append([]string{"netns", "exec", n.NS.Name, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}, args...)
		out, err := exec.Command("ip", argv...).CombinedOutput()
		return string(out), err
	}
	if out, err := nobody("cat", filepath.Join(n.Dir, "nodeconfig.yaml")); err != nil {
		t.Fatalf("a non-root process cannot read a 0644 file beside the sockets (%v: %s): the test would prove nothing", err, out)
	}
	for _, c := range [][]string{
		{"socat", "-u", "OPEN:/dev/null", "UNIX-CONNECT:" + n.Socket},
		{"socat", "-u", "OPEN:/dev/null", "UNIX-CONNECT:" + filepath.Join(n.Dir, "admin.sock")},
		{"ls", store},
		{"cat", files[0]},
	} {
		out, err := nobody(c...)
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("non-root %s: %v, %q; want Permission denied", strings.Join(c, " "), err, out)
		}
	}
}
