package bird

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"testing/synctest"
)

// The config holds the peers' MD5 passwords: the file must be readable by
// its owner only, and so must the directory listing it and the temporary
// files the Reloader writes beside it.
func TestReloadWritesOwnerOnly(t *testing.T) {
	// A permissive umask must not widen what the Reloader writes.
	defer syscall.Umask(syscall.Umask(0))
	synctest.Test(t, func(t *testing.T) {
		r, f := runReloader(t)
		r.Apply([]byte("protocol bgp p { password \"secret\"; }"))
		synctest.Wait()
		if len(f.took()) != 1 {
			t.Fatalf("reloads = %v, want one", f.took())
		}
		st, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != ConfigMode || got&0o077 != 0 {
			t.Errorf("%s has mode %v, want %v", f.path, got, ConfigMode)
		}
	})
}

func TestPrepareDirTightens(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0))
	root := t.TempDir()
	// A hostPath volume the kubelet created (DirectoryOrCreate) is 0755.
	existing := filepath.Join(root, "run-flock", "bird")
	if err := os.MkdirAll(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(root, "fresh", "bird")
	for _, dir := range []string{existing, fresh} {
		if err := PrepareDir(filepath.Join(dir, "bird.conf")); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != DirMode || got&0o077 != 0 {
			t.Errorf("%s has mode %v, want %v", dir, got, DirMode)
		}
	}
}
