package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseTimings(t *testing.T) {
	log := `time=2026-12-03T15:00:00Z level=INFO msg="pod added" pod=bench/pod-0
time=2026-12-03T15:00:00Z level=DEBUG msg="add timings" lookup_us=12 ipam_store_us=340 policy_us=0 netlink_us=5100 total_us=5452
time=2026-12-03T15:00:01Z level=DEBUG msg="add timings" lookup_us=1 ipam_store_us=2 policy_us=3 netlink_us=4 total_us=10
`
	got, err := parseTimings(log)
	if err != nil {
		t.Fatal(err)
	}
	us := time.Microsecond
	want := []addTiming{{12 * us, 340 * us, 0, 5100 * us, 5452 * us}, {us, 2 * us, 3 * us, 4 * us, 10 * us}}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(addTiming{})); d != "" {
		t.Errorf("parseTimings (-want +got):\n%s", d)
	}
}

func TestParseTimingsErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`msg="add timings" lookup_us=1 ipam_store_us=2 policy_us=3 netlink_us=4`, "no total_us"},
		{`msg="add timings" lookup_us=x ipam_store_us=2 policy_us=3 netlink_us=4 total_us=5`, `lookup_us="x" is not an integer`},
	} {
		_, err := parseTimings(tc.line)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseTimings(%q) = %v, want an error containing %q", tc.line, err, tc.want)
		}
	}
}
