package realnode

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"syscall"
)

// ExecWithSysctls replaces the process with argv in a mount namespace of its
// own where each of Sysctls reads its wanted value: a regular file under dir
// bind-mounted over /proc/sys/KEY. The machine's settings stay as they are
// and nothing else of the namespace differs (it starts as a private copy).
func ExecWithSysctls(dir string, argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("exec with sysctls: no command")
	}
	runtime.LockOSThread() // unshare and exec on the same thread
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	keys := make([]string, 0, len(Sysctls))
	for k := range Sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		file := filepath.Join(dir, k)
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(file, []byte(Sysctls[k]+"\n"), 0o644); err != nil {
			return err
		}
		if err := syscall.Mount(file, filepath.Join("/proc/sys", k), "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over /proc/sys/%s: %w", file, k, err)
		}
	}
	return syscall.Exec(argv[0], argv, os.Environ())
}
