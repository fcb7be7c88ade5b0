package bird

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeBird plays BIRD's control socket: it checks the file a `configure
// check "FILE"` names and records what the config file holds at each
// `configure`, with the (fake) time since the test started.
type fakeBird struct {
	path  string
	start time.Time

	mu      sync.Mutex
	down    int                    // fail this many commands as unreachable
	refuse  func(conf string) bool // refuse these configs on check
	reloads []reloadAt             // what BIRD took, when
	checked []string               // configs checked
	cmds    []string               // every command
}

type reloadAt struct {
	At   time.Duration
	Conf string
}

func (f *fakeBird) Command(_ context.Context, cmd string) ([]Line, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, cmd)
	if f.down > 0 {
		f.down--
		return nil, errors.New("dial unix /run/bird.ctl: connect: connection refused")
	}
	switch {
	case strings.HasPrefix(cmd, "configure check "):
		name, err := strconv.Unquote(strings.TrimPrefix(cmd, "configure check "))
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return []Line{{8002, err.Error()}}, &ReplyError{cmd, 8002, err.Error()}
		}
		f.checked = append(f.checked, string(b))
		if f.refuse != nil && f.refuse(string(b)) {
			text := name + ":1:1 syntax error"
			return []Line{{2, "Reading configuration from " + name}, {8002, text}}, &ReplyError{cmd, 8002, text}
		}
		return []Line{{2, "Reading configuration from " + name}, {20, "Configuration OK"}}, nil
	case cmd == "configure":
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, err
		}
		f.reloads = append(f.reloads, reloadAt{time.Since(f.start), string(b)})
		return []Line{{2, "Reading configuration from " + f.path}, {3, "Reconfigured"}}, nil
	}
	return nil, fmt.Errorf("fake bird: unexpected command %q", cmd)
}

func (f *fakeBird) took() []reloadAt {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]reloadAt(nil), f.reloads...)
}

// runReloader starts a Reloader against a fake BIRD inside a synctest
// bubble and stops it when the test ends.
func runReloader(t *testing.T, onStatus ...func(Status)) (*Reloader, *fakeBird) {
	t.Helper()
	f := &fakeBird{path: filepath.Join(t.TempDir(), "bird.conf"), start: time.Now()}
	r := NewReloader(f.path, f)
	r.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if len(onStatus) > 0 {
		r.OnStatus = onStatus[0]
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, f
}

const ms = time.Millisecond

func TestReloadFirstChangeAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, f := runReloader(t)
		r.Apply([]byte("a"))
		synctest.Wait()
		if d := cmp.Diff([]reloadAt{{0, "a"}}, f.took()); d != "" {
			t.Errorf("reloads (-want +got):\n%s", d)
		}
		if st := r.Status(); !st.InSync || st.Err != nil || st.Reloads != 1 {
			t.Errorf("Status = %+v, want in sync after one reload", st)
		}
		// Quiet for longer than the window: the next change goes at once too.
		time.Sleep(2 * time.Second)
		r.Apply([]byte("b"))
		synctest.Wait()
		if d := cmp.Diff([]reloadAt{{0, "a"}, {2000 * ms, "b"}}, f.took()); d != "" {
			t.Errorf("reloads (-want +got):\n%s", d)
		}
	})
}

func TestReloadCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, f := runReloader(t)
		r.Apply([]byte("a"))
		for _, c := range []string{"b", "c", "d"} {
			time.Sleep(100 * ms)
			r.Apply([]byte(c))
			if st := r.Status(); st.InSync {
				t.Errorf("Status after Apply(%s) = %+v, want not in sync", c, st)
			}
		}
		time.Sleep(time.Second)
		// One reload at once, one trailing reload of the latest config at
		// the end of the window.
		if d := cmp.Diff([]reloadAt{{0, "a"}, {500 * ms, "d"}}, f.took()); d != "" {
			t.Errorf("reloads (-want +got):\n%s", d)
		}
		if st := r.Status(); !st.InSync || st.Reloads != 2 {
			t.Errorf("Status = %+v, want in sync after two reloads", st)
		}
	})
}

// 100 updates in one second make three reloads: at once, and at the end of
// each of the two windows.
func TestReloadBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, f := runReloader(t)
		for i := range 100 {
			r.Apply([]byte(strconv.Itoa(i)))
			time.Sleep(10 * ms)
			if i == 0 {
				time.Sleep(3 * ms) // no update at the instant a window ends
			}
		}
		time.Sleep(time.Second)
		want := []reloadAt{{0, "0"}, {500 * ms, "49"}, {1000 * ms, "99"}}
		if d := cmp.Diff(want, f.took()); d != "" {
			t.Errorf("reloads (-want +got):\n%s", d)
		}
	})
}

func TestReloadSkipsIdentical(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, f := runReloader(t)
		r.Apply([]byte("a"))
		// Changed and changed back within the window: nothing to do.
		time.Sleep(100 * ms)
		r.Apply([]byte("b"))
		time.Sleep(100 * ms)
		r.Apply([]byte("a"))
		time.Sleep(time.Second)
		r.Apply([]byte("a"))
		time.Sleep(time.Second)
		if d := cmp.Diff([]reloadAt{{0, "a"}}, f.took()); d != "" {
			t.Errorf("reloads (-want +got):\n%s", d)
		}
		if st := r.Status(); !st.InSync || st.Reloads != 1 {
			t.Errorf("Status = %+v, want in sync after one reload", st)
		}
	})
}

func TestReloadRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen []Status
		var mu sync.Mutex
		r, f := runReloader(t, func(s Status) { mu.Lock(); seen = append(seen, s); mu.Unlock() })
		f.down = 3
		r.Apply([]byte("a"))
		synctest.Wait()
		st := r.Status()
		if st.InSync || st.Failures != 1 || st.Err == nil || !strings.Contains(st.Err.Error(), "bird unreachable") {
			t.Errorf("Status with BIRD down = %+v, want one failure, bird unreachable", st)
		}
		// BIRD reads the newest config when it comes up, even unchecked.
		if b, err := os.ReadFile(f.path); err != nil || string(b) != "a" {
			t.Errorf("config file with BIRD down = %q, %v; want the new config", b, err)
		}
		time.Sleep(time.Minute)
		// Tried at 0, 1 s, 3 s, 7 s: up at the fourth attempt.
		if d := cmp.Diff([]reloadAt{{7000 * ms, "a"}}, f.took()); d != "" {
			t.Errorf("reloads (-want +got):\n%s", d)
		}
		st = r.Status()
		if !st.InSync || st.Err != nil || st.Failures != 0 || st.Reloads != 1 {
			t.Errorf("Status after recovery = %+v", st)
		}
		mu.Lock()
		defer mu.Unlock()
		var failures []int
		for _, s := range seen {
			failures = append(failures, s.Failures)
		}
		if d := cmp.Diff([]int{1, 2, 3, 0}, failures); d != "" {
			t.Errorf("OnStatus failures (-want +got):\n%s", d)
		}
	})
}

func TestReloadRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, f := runReloader(t)
		f.refuse = func(conf string) bool { return strings.HasPrefix(conf, "bad") }
		r.Apply([]byte("good"))
		synctest.Wait()
		time.Sleep(time.Second)
		r.Apply([]byte("bad"))
		synctest.Wait()
		st := r.Status()
		if st.InSync || st.Err == nil || !strings.Contains(st.Err.Error(), "bird refuses the config") ||
			!strings.Contains(st.Err.Error(), "8002") {
			t.Errorf("Status = %+v, want BIRD's refusal", st)
		}
		// A refused config never replaces the one BIRD runs.
		if b, _ := os.ReadFile(f.path); string(b) != "good" {
			t.Errorf("config file = %q after a refused config, want %q", b, "good")
		}
		time.Sleep(1500 * ms) // retried at 1 s: refused again, next in 2 s
		r.Apply([]byte("fixed"))
		synctest.Wait()
		// A new config does not wait for the backoff.
		if d := cmp.Diff([]reloadAt{{0, "good"}, {2500 * ms, "fixed"}}, f.took()); d != "" {
			t.Errorf("reloads (-want +got):\n%s", d)
		}
		if d := cmp.Diff([]string{"good", "bad", "bad", "fixed"}, f.checked); d != "" {
			t.Errorf("checked (-want +got):\n%s", d)
		}
		if st := r.Status(); !st.InSync || st.Err != nil {
			t.Errorf("Status = %+v, want in sync", st)
		}
		// No temporary file is left behind.
		ents, _ := os.ReadDir(filepath.Dir(f.path))
		if len(ents) != 1 {
			t.Errorf("config dir holds %d files, want only bird.conf", len(ents))
		}
	})
}

// Going back to the config BIRD runs clears a pending failure.
func TestReloadRevertClearsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, f := runReloader(t)
		f.refuse = func(conf string) bool { return conf == "bad" }
		r.Apply([]byte("good"))
		synctest.Wait()
		time.Sleep(time.Second)
		r.Apply([]byte("bad"))
		synctest.Wait()
		r.Apply([]byte("good"))
		time.Sleep(time.Minute)
		st := r.Status()
		if !st.InSync || st.Err != nil || st.Failures != 0 {
			t.Errorf("Status = %+v, want in sync without error", st)
		}
		if n := len(f.checked); n != 2 {
			t.Errorf("%d configs checked, want 2 (no retry of a config no longer wanted)", n)
		}
	})
}
