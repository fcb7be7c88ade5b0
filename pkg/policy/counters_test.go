package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCounters(t *testing.T) {
	got, err := ParseCounters([]byte(`{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
		{"counter": {"family": "inet", "name": "drop_in_flock0000000a", "table": "flock", "handle": 3, "packets": 7, "bytes": 420}},
		{"counter": {"family": "inet", "name": "other", "table": "filter", "handle": 4, "packets": 1, "bytes": 1}},
		{"counter": {"family": "ip", "name": "drop_in_x", "table": "flock", "handle": 4, "packets": 1, "bytes": 1}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]counterValue{"drop_in_flock0000000a": {7, 420}}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(counterValue{})); d != "" {
		t.Errorf("ParseCounters (-want +got):\n%s", d)
	}
	if _, err := ParseCounters([]byte("Error: No such file or directory")); err == nil {
		t.Error("ParseCounters of nft's error text succeeded")
	}
}

func TestScriptStats(t *testing.T) {
	b, err := Render(Translate(goldenInputs()["features"]))
	if err != nil {
		t.Fatal(err)
	}
	st := ScriptStats(b)
	if st.Rules < 10 || st.Sets < 6 || st.Elements < 4 {
		t.Errorf("ScriptStats of the features golden = %+v: too few", st)
	}
	empty, _ := Render(Translate(goldenInputs()["empty"]))
	// The empty table: the two base chains' preambles and dispatch, the
	// two deny chains' count and drop; the four maps and the hairpin set;
	// no elements.
	want := Stats{Rules: 2*len(preamble) + 3 + 1 + 2*2, Sets: 5, Elements: 0}
	if got := ScriptStats(empty); got != want {
		t.Errorf("ScriptStats(empty) = %+v, want %+v\n%s", got, want, empty)
	}
}

func FuzzParseCounters(f *testing.F) {
	f.Add([]byte(`{"nftables": [{"counter": {"family": "inet", "name": "drop_in_a", "table": "flock", "packets": 7, "bytes": 420}}]}`))
	f.Add([]byte(`{"nftables": [{"counter": null}, {}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseCounters(b)
		if err != nil && m != nil {
			t.Fatalf("error %v with a result", err)
		}
		for name := range m {
			if name == "" {
				t.Fatal("a counter without a name")
			}
		}
	})
}
