package store

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func rec(id string, v6, v4 string) Record {
	r := Record{ContainerID: id, IfName: "eth0", Namespace: "ns", Name: "pod-" + id, HostIface: "flock" + id[:min(8, len(id))],
		Created: time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)}
	if v6 != "" {
		r.IPv6 = netip.MustParseAddr(v6)
	}
	if v4 != "" {
		r.IPv4 = netip.MustParseAddr(v4)
		r.Gateway4 = netip.MustParseAddr("10.0.0.1")
	}
	return r
}

func TestSaveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Sync: true}, discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{rec("aaaa", "2001:db8::1", "10.0.0.2"), rec("bbbb", "2001:db8::2", ""), rec("cccc", "", "10.0.0.3")}
	for _, r := range want {
		if err := s.Save(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(Key{"bbbb", "eth0"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(Key{"never", "eth0"}); err != nil {
		t.Fatalf("delete of a missing allocation: %v", err)
	}
	s2, err := Open(dir, Options{}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Record{want[0], want[2]}, s2.List(), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
	if _, ok := s2.Get(Key{"bbbb", "eth0"}); ok {
		t.Error("deleted record came back")
	}
}

// TestCreatedFallback: a record written before Created existed gets its
// file's modification time, so the leak sweep's grace period still holds.
func TestCreatedFallback(t *testing.T) {
	dir := t.TempDir()
	k := Key{"old", "eth0"}
	path := filepath.Join(dir, fileName(k))
	if err := os.WriteFile(path, []byte(`{"containerID":"old","ifName":"eth0","hostIface":"flockold"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := s.Get(k); !ok || !r.Created.Equal(mtime) {
		t.Errorf("Created = %v (found %v), want the file's mtime %v", r.Created, ok, mtime)
	}
}

func TestTornAndForeignFiles(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, Options{}, discard)
	good := rec("good", "2001:db8::1", "10.0.0.2")
	if err := s.Save(good); err != nil {
		t.Fatal(err)
	}
	// A torn write of another record, a leftover temp file, a record whose
	// name does not match its content, and an empty file.
	torn := filepath.Join(dir, fileName(Key{"torn", "eth0"}))
	os.WriteFile(torn, []byte(`{"containerID":"torn","ifName":"eth0","hostIf`), 0o600)
	os.WriteFile(filepath.Join(dir, tmpPrefix+"123"), []byte(`{"containerID"`), 0o600)
	b, _ := os.ReadFile(filepath.Join(dir, fileName(good.Key())))
	os.WriteFile(filepath.Join(dir, fileName(Key{"other", "eth0"})), b, 0o600)
	os.WriteFile(filepath.Join(dir, fileName(Key{"empty", "eth0"})), nil, 0o600)

	s2, err := Open(dir, Options{}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Record{good}, s2.List(), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(torn + ".corrupt"); err != nil {
		t.Errorf("torn file not moved aside: %v", err)
	}
	// Every bad file is listed once, by name, for the agent to report.
	var names []string
	for _, q := range s2.Quarantined() {
		names = append(names, q.File)
		if q.Path != filepath.Join(dir, q.File)+QuarantineSuffix || q.Err == nil {
			t.Errorf("quarantined %+v", q)
		}
	}
	want := []string{KeyFile(Key{"torn", "eth0"}), KeyFile(Key{"other", "eth0"}), KeyFile(Key{"empty", "eth0"})}
	if diff := cmp.Diff(want, names, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("quarantined (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, tmpPrefix+"123")); !os.IsNotExist(err) {
		t.Errorf("temp file left behind: %v", err)
	}
}

// TestKill9 kills a process that writes allocations as fast as it can, at
// several moments, and checks every allocation it reported saved is intact.
func TestKill9(t *testing.T) {
	if os.Getenv("FLOCK_STORE_WRITER") != "" {
		writer(os.Getenv("FLOCK_STORE_WRITER"))
		return
	}
	for round := range 5 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
		cmd.Env = append(os.Environ(), "FLOCK_STORE_WRITER="+dir)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(out)
		first, err := br.ReadString('\n') // the writer is running
		if err != nil {
			t.Fatalf("round %d: writer did not start: %v", round, err)
		}
		time.Sleep(time.Duration(1+round*7) * time.Millisecond)
		cmd.Process.Kill()
		rest, _ := io.ReadAll(br)
		cmd.Wait()
		saved := first + string(rest)
		s, err := Open(dir, Options{}, discard)
		if err != nil {
			t.Fatal(err)
		}
		// Only whole lines count: the kill may cut the last one short.
		ids := strings.Split(saved, "\n")
		ids = ids[:len(ids)-1]
		if len(ids) == 0 {
			t.Fatalf("round %d: writer saved nothing before the kill", round)
		}
		for _, id := range ids {
			r, ok := s.Get(Key{id, "eth0"})
			if !ok || r.HostIface == "" || r.Namespace != "ns" {
				t.Errorf("round %d: allocation %s reported saved is missing or damaged: %+v", round, id, r)
			}
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "*.corrupt")); len(m) > 0 {
			t.Errorf("round %d: corrupt files after kill -9: %v", round, m)
		}
	}
}

func writer(dir string) {
	s, err := Open(dir, Options{}, discard)
	if err != nil {
		os.Exit(2)
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("c%08d", i)
		if err := s.Save(rec(id, "2001:db8::1", "10.0.0.2")); err != nil {
			os.Exit(3)
		}
		fmt.Println(id)
		if i%3 == 0 {
			s.Save(rec(id, "2001:db8::2", "10.0.0.3")) // rewrite in place
		}
	}
}
