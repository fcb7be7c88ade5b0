package lab

import (
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/nsnet"
	"github.com/fritzlab/flock/internal/testns"
)

// Down finds what runs in the lab's namespaces, whoever started it.
func TestPidsInNetnsAndStop(t *testing.T) {
	name := testns.New(t, "labt-pids")
	inside := exec.Command("sleep", "300")
	if err := nsnet.Start(name, inside); err != nil {
		t.Fatal(err)
	}
	go inside.Wait()
	outside := exec.Command("sleep", "300")
	if err := outside.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outside.Process.Kill(); outside.Wait() })

	pids := pidsInNetns([]string{name})
	if !slices.Contains(pids, inside.Process.Pid) || slices.Contains(pids, outside.Process.Pid) {
		t.Fatalf("pidsInNetns = %v, want %d and not %d", pids, inside.Process.Pid, outside.Process.Pid)
	}
	if err := stopPids(pids, time.Second); err != nil {
		t.Fatal(err)
	}
	if controlplane.PidAlive(inside.Process.Pid, "") {
		t.Error("process in the namespace survived stopPids")
	}
	if !controlplane.PidAlive(outside.Process.Pid, "") {
		t.Error("process outside the namespace was stopped")
	}
	if len(pidsInNetns([]string{"flk-labt-no-such-netns"})) != 0 {
		t.Error("pidsInNetns found processes of a namespace that does not exist")
	}
}
