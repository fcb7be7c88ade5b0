package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseProc(t *testing.T) {
	status := "Name:\tflock-agent\nVmPeak:\t  900000 kB\nVmRSS:\t   31236 kB\nRssAnon:\t   12000 kB\nThreads:\t9\n"
	stat := "4242 (flock agent) S 1 4242 4242 0 -1 4194560 5000 0 0 0 250 75 0 0 20 0 9 0 1000 800000 7809 18446744073709551615"
	got, err := parseProc(status, stat)
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{rssKiB: 31236, anonKiB: 12000, cpu: 3250 * time.Millisecond}
	if got != want {
		t.Errorf("parseProc = %+v, want %+v", got, want)
	}
	for _, tc := range []struct{ status, stat, want string }{
		{"Name:\tx\n", stat, "no VmRSS"},
		{"VmRSS:\t12 MB\n", stat, "is not '<n> kB'"},
		{"VmRSS:\t12 kB\nRssAnon:\tx kB\n", stat, `RssAnon "x"`},
		{status, "4242 flock", "has no ')'"},
		{status, "4242 (x) S 1 2", "fields after the command"},
		{status, "4242 (x) S 1 2 3 4 5 6 7 8 9 10 x 75 0", `stat cpu field "x"`},
	} {
		if _, err := parseProc(tc.status, tc.stat); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseProc(%q, %q) = %v, want an error containing %q", tc.status, tc.stat, err, tc.want)
		}
	}
	// The running test's own files parse.
	s, _ := os.ReadFile("/proc/self/status")
	st, _ := os.ReadFile("/proc/self/stat")
	if p, err := parseProc(string(s), string(st)); err != nil || p.rssKiB == 0 {
		t.Errorf("own /proc: %+v, %v", p, err)
	}
}

func TestParseSyncs(t *testing.T) {
	log := `time=2026-12-03T15:00:00.000Z level=INFO msg="networkpolicy applied" pods=250 warnings=0
time=2026-12-03T15:00:00.001Z level=DEBUG msg="networkpolicy sync" translate_ms=412 apply_ms=188 pods=250 err=<nil>
time=2026-12-03T15:00:01.000Z level=DEBUG msg="networkpolicy sync" translate_ms=3 apply_ms=0 pods=250 err=<nil>
`
	got, err := parseSyncs(log)
	if err != nil {
		t.Fatal(err)
	}
	want := []syncTiming{{412 * time.Millisecond, 188 * time.Millisecond}, {3 * time.Millisecond, 0}}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(syncTiming{})); d != "" {
		t.Errorf("parseSyncs (-want +got):\n%s", d)
	}
	if n := logCount(log, "networkpolicy applied"); n != 1 {
		t.Errorf("logCount = %d, want 1", n)
	}
	if _, err := parseSyncs(`msg="networkpolicy sync" translate_ms=x apply_ms=1`); err == nil || !strings.Contains(err.Error(), `translate_ms="x"`) {
		t.Errorf("bad value: %v", err)
	}
	if _, err := parseSyncs(`msg="networkpolicy sync" translate_ms=1`); err == nil || !strings.Contains(err.Error(), "no apply_ms") {
		t.Errorf("missing key: %v", err)
	}
}
