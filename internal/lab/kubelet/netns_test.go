package kubelet

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/fritzlab/flock/internal/testns"
)

// TestNetnsVisibility runs kubelet-lite's namespace handling in a process
// inside a node namespace. Entered with `nsenter --net`, the namespaces it
// makes and deletes are seen from here (as the agent and `flock-lab exec`
// must see them); started with `ip netns exec`, whose private mount
// namespace would hide them, it refuses to start.
func TestNetnsVisibility(t *testing.T) {
	node := testns.New(t, "klnode")
	name := testns.Name("klns") // kubelet-lite makes it
	t.Cleanup(func() { testns.Delete(name) })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run := func(enter []string, arg string) (string, error) {
		cmd := exec.Command(enter[0], append(enter[1:], self)...)
		cmd.Env = append(os.Environ(), netnsEnv+"="+arg)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	nsenter := []string{"nsenter", "--net=" + testns.Path(node), "--"}
	for _, arg := range []string{name, name} { // the second time it is kept
		if out, err := run(nsenter, arg); err != nil {
			t.Fatalf("create %s: %v: %s", arg, err, out)
		}
		if !netnsLive(name) {
			t.Fatalf("netns %s is not visible outside", name)
		}
	}
	if out, err := exec.Command("ip", "-n", name, "link", "show", "lo").CombinedOutput(); err != nil || !strings.Contains(string(out), ",UP") {
		t.Errorf("lo in %s is not up: %v %s", name, err, out)
	}
	for range 2 { // the second time it is already gone
		if out, err := run(nsenter, "-"+name); err != nil {
			t.Fatalf("delete %s: %v: %s", name, err, out)
		}
		if _, err := os.Stat(netnsPath(name)); !os.IsNotExist(err) {
			t.Fatalf("netns %s still there after its deletion: %v", name, err)
		}
	}

	out, err := run([]string{"ip", "netns", "exec", node}, name)
	if err == nil || !strings.Contains(out, "slave mount") {
		t.Errorf("under ip netns exec: %v: %s; want a refusal", err, out)
	}
	if _, err := os.Stat(netnsPath(name)); !os.IsNotExist(err) {
		t.Errorf("netns %s made despite the refusal", name)
	}
}
