package kubelet

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNames(t *testing.T) {
	n := netnsName("flk-lab-pod-", "0b6c5a0e-7f1c-4c9a-9d57-1d2f3e4a5b6c")
	if !regexp.MustCompile(`^flk-lab-pod-[0-9a-f]{10}$`).MatchString(n) {
		t.Errorf("netns name %q", n)
	}
	if n != netnsName("flk-lab-pod-", "0b6c5a0e-7f1c-4c9a-9d57-1d2f3e4a5b6c") || n == netnsName("flk-lab-pod-", "other") {
		t.Error("netns name is not a function of the UID")
	}
	id := sandboxID("u1")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) || id != sandboxID("u1") || id == sandboxID("u2") {
		t.Errorf("sandbox id %q is not 64 hex digits stable per UID", id)
	}
}

func TestStateStore(t *testing.T) {
	dir := t.TempDir()
	s, err := newStateStore(filepath.Join(dir, "pods"))
	if err != nil {
		t.Fatal(err)
	}
	a := &podRecord{UID: "b-uid", Namespace: "ns", Name: "a", Netns: "flk-lab-pod-1", SandboxID: sandboxID("b-uid"),
		PortMappings: []portMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
		Processes:    []procRecord{{Container: "c", PID: 42, StartTime: 7}}}
	b := &podRecord{UID: "a-uid", Namespace: "ns", Name: "b"}
	for _, r := range []*podRecord{a, b} {
		if err := s.save(r); err != nil {
			t.Fatal(err)
		}
	}
	a.Name = "a2"
	if err := s.save(a); err != nil { // replaces
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pods", "junk.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, errs := s.list()
	if len(errs) != 1 {
		t.Errorf("errors %v, want one for junk.json", errs)
	}
	if d := cmp.Diff([]*podRecord{b, a}, got); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}
	if err := s.remove("a-uid"); err != nil {
		t.Fatal(err)
	}
	if err := s.remove("a-uid"); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if got, _ := s.list(); len(got) != 1 || got[0].UID != "b-uid" {
		t.Errorf("after remove: %v", got)
	}
}

func TestProcStartTime(t *testing.T) {
	st, err := procStartTime(os.Getpid())
	if err != nil || st == 0 {
		t.Fatalf("procStartTime(self) = %d, %v", st, err)
	}
	if again, _ := procStartTime(os.Getpid()); again != st {
		t.Errorf("start time changed: %d then %d", st, again)
	}
	if _, err := procStartTime(1 << 30); err == nil {
		t.Error("no error for a pid that cannot exist")
	}
}
