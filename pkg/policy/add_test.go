package policy

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/policy/nptest"
	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
)

// onlyLocal is handCluster with the given pods local and the other pods of
// node n1 known as peers only (their Iface cleared), as the controller
// translates a pod being added.
func onlyLocal(policies []networkingv1.NetworkPolicy, names ...string) *Input {
	in := handCluster()
	in.Policies = policies
	for i := range in.Pods {
		p := &in.Pods[i]
		keep := false
		for _, n := range names {
			keep = keep || p.Key() == n
		}
		if !keep {
			p.Iface = ""
		}
	}
	return in
}

func TestApplierAdd(t *testing.T) {
	ctx := context.Background()
	fromY := nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels("team", "b"))), nptest.Port("", 80))
	shared := []networkingv1.NetworkPolicy{nptest.Policy("x", "deny", nil), nptest.Policy("x", "from-y", nil, fromY)}
	own := append(shared, nptest.Policy("x", "b-from-z", nptest.Labels("pod", "b"), nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels(nsNameLabel, "z"))))))

	t.Run("shared chain: map elements only", func(t *testing.T) {
		f := &fakeNFT{}
		a := NewApplier(f)
		if ok, err := a.Add(ctx, Translate(onlyLocal(shared, "x/b"))); ok || err != nil || len(f.take()) != 0 {
			t.Fatalf("Add before any Apply = %v, %v; want false without calling nft", ok, err)
		}
		base := Translate(onlyLocal(shared, "x/a"))
		if _, err := a.Apply(ctx, base); err != nil {
			t.Fatal(err)
		}
		f.take()
		f.stdin = nil
		if ok, err := a.Add(ctx, Translate(onlyLocal(shared, "x/b"))); !ok || err != nil {
			t.Fatalf("Add = %v, %v", ok, err)
		}
		if d := cmp.Diff([]string{"-f -"}, f.take()); d != "" {
			t.Errorf("Add calls (-want +got):\n%s", d)
		}
		script := f.stdin[0]
		if !strings.Contains(script, "add element inet flock ingress_by_iface {\n\t\"flock0000000b\" comment \"x/b\" : jump ingress_") ||
			strings.Contains(script, "\tchain ") || strings.Contains(script, "\tset ") || strings.Contains(script, "egress_by_iface") ||
			!strings.Contains(script, "table inet flock {\n\tcounter drop_in_flock0000000b {") ||
			!strings.Contains(script, "add element inet flock ingress_drops {\n\t\"flock0000000b\" : \"drop_in_flock0000000b\"") {
			t.Errorf("Add script for a pod sharing a's chain:\n%s", script)
		}
		if ok, err := a.Add(ctx, Translate(onlyLocal(shared, "x/b"))); ok || err != nil || len(f.take()) != 0 {
			t.Errorf("second Add of the same interface = %v, %v; want false without calling nft", ok, err)
		}
		if ok, err := a.Add(ctx, Translate(onlyLocal(shared, "x/a"))); ok || err != nil || len(f.take()) != 0 {
			t.Errorf("Add of an interface the load has = %v, %v; want false without calling nft", ok, err)
		}
		if r, err := a.Resync(ctx); r || err != nil || len(f.take()) != 0 {
			t.Errorf("Resync after Add = %v, %v; want nothing done (it would drop the added pod)", r, err)
		}
		// The table is more than the last script: an Apply of that same
		// model must load, not skip.
		if c, err := a.Apply(ctx, base); !c || err != nil {
			t.Errorf("Apply after Add = %v, %v; want a load", c, err)
		}
		f.take()
		if c, err := a.Apply(ctx, base); c || err != nil {
			t.Errorf("second Apply = %v, %v; want it skipped", c, err)
		}
	})

	t.Run("own chain: declared with its sets", func(t *testing.T) {
		f := &fakeNFT{}
		a := NewApplier(f)
		if _, err := a.Apply(ctx, Translate(onlyLocal(own, "x/a"))); err != nil {
			t.Fatal(err)
		}
		f.stdin = nil
		if ok, err := a.Add(ctx, Translate(onlyLocal(own, "x/b"))); !ok || err != nil {
			t.Fatalf("Add = %v, %v", ok, err)
		}
		script := f.stdin[0]
		full, _ := Render(Translate(onlyLocal(own, "x/a", "x/b")))
		name := strings.TrimPrefix(regexpFind(t, `"flock0000000b" comment "x/b" : (jump ingress_[0-9a-f]+)`, string(full)), "jump ")
		for _, want := range []string{"\tset " + name + "_any6 {", "\tchain " + name + " {", `"flock0000000b" comment "x/b" : jump ` + name} {
			if !strings.Contains(script, want) {
				t.Errorf("Add script lacks %q:\n%s", want, script)
			}
		}
	})

	t.Run("unrestricted pod: nothing to write", func(t *testing.T) {
		f := &fakeNFT{}
		a := NewApplier(f)
		if _, err := a.Apply(ctx, Translate(onlyLocal(nil, "x/a"))); err != nil {
			t.Fatal(err)
		}
		f.take()
		if ok, err := a.Add(ctx, Translate(onlyLocal(nil, "x/b"))); !ok || err != nil || len(f.take()) != 0 {
			t.Errorf("Add of an unrestricted pod = %v, %v; want true without calling nft", ok, err)
		}
	})

	t.Run("table gone: error, and the next Apply loads", func(t *testing.T) {
		f := &fakeNFT{}
		a := NewApplier(f)
		base := Translate(onlyLocal(shared, "x/a"))
		if _, err := a.Apply(ctx, base); err != nil {
			t.Fatal(err)
		}
		f.shape = "" // someone deleted the table
		if ok, err := a.Add(ctx, Translate(onlyLocal(shared, "x/b"))); ok || err == nil || !strings.Contains(err.Error(), "add to nftables table inet flock") {
			t.Errorf("Add without a table = %v, %v; want an error", ok, err)
		}
		f.take()
		if c, err := a.Apply(ctx, Translate(onlyLocal(shared, "x/a", "x/b"))); !c || err != nil || f.shape == "" {
			t.Errorf("Apply after a failed Add = %v, %v", c, err)
		}
	})
}

func regexpFind(t *testing.T, re, s string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, s)
	}
	return m[1]
}
