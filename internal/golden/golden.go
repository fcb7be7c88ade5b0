// Package golden compares rendered text with a golden file under testdata/,
// rewriting the file instead when the test runs with -update.
package golden

import (
	"flag"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Check fails t when the file at path differs from got (what describes got
// in the message); with -update it writes got to path first.
func Check(t testing.TB, path, what string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs from the %s (-want +got; go test -update rewrites it):\n%s", path, what, d)
	}
}
