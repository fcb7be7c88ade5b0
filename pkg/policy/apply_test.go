package policy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/policy/nptest"
	"github.com/google/go-cmp/cmp"
	networkingv1 "k8s.io/api/networking/v1"
)

// fakeNFT plays nft: it records every call, "loads" a script by keeping it
// as the table (shape: the script, elems: set elements, which nft -t leaves
// out), and lists that table, or fails as nft does when there is none.
type fakeNFT struct {
	calls        []string
	stdin        []string // every script loaded
	shape, elems string   // "" shape: no table
	fail         error    // returned by the next load
}

func (f *fakeNFT) Run(_ context.Context, stdin []byte, args ...string) ([]byte, error) {
	call := strings.Join(args, " ")
	f.calls = append(f.calls, call)
	if call == "-f -" {
		f.stdin = append(f.stdin, string(stdin))
		if f.fail != nil {
			err := f.fail
			f.fail = nil
			return nil, err
		}
		if strings.HasPrefix(string(stdin), addHeader) {
			if f.shape == "" {
				return nil, errors.New("Error: No such file or directory")
			}
			f.shape += string(stdin)
			return nil, nil
		}
		f.shape, f.elems = "", ""
		if strings.Contains(string(stdin), "table inet flock {") {
			f.shape, f.elems = string(stdin), "elements"
		}
		return nil, nil
	}
	if call == "list tables inet" {
		if f.shape == "" {
			return nil, nil
		}
		return []byte("table inet flock\n"), nil
	}
	if f.shape == "" {
		return nil, errors.New("Error: No such file or directory")
	}
	switch call {
	case "-s -t list table inet flock":
		return []byte(f.shape), nil
	case "-s list map inet flock ingress_by_iface", "-s list map inet flock egress_by_iface":
		return []byte(args[5]), nil
	case "-s list table inet flock":
		return []byte(f.shape + f.elems), nil
	case "-j list counters table inet flock":
		return []byte(`{"nftables": [{"metainfo": {"version": "1.0.6"}}]}`), nil
	}
	return nil, errors.New("unexpected nft call " + call)
}

func (f *fakeNFT) take() []string {
	c := f.calls
	f.calls = nil
	return c
}

func TestApplier(t *testing.T) {
	ctx := context.Background()
	f := &fakeNFT{}
	a := NewApplier(f)
	shape := []string{"-s -t list table inet flock", "-s list map inet flock ingress_by_iface", "-s list map inet flock egress_by_iface"}
	load := append([]string{"-j list counters table inet flock", "-f -"}, shape...)
	resync := append(shape, "-s list table inet flock")

	in := handCluster()
	if r, err := a.Resync(ctx); r || err != nil || len(f.take()) != 0 {
		t.Errorf("Resync before any Apply = %v, %v; want nothing done", r, err)
	}
	if c, err := a.Apply(ctx, Translate(in)); !c || err != nil {
		t.Fatalf("first Apply = %v, %v", c, err)
	}
	if d := cmp.Diff(load, f.take()); d != "" {
		t.Errorf("first Apply calls (-want +got):\n%s", d)
	}
	if c, err := a.Apply(ctx, Translate(handCluster())); c || err != nil || len(f.take()) != 0 {
		t.Errorf("Apply of an equal model = %v, %v; want it skipped without calling nft", c, err)
	}
	for range 2 {
		if r, err := a.Resync(ctx); r || err != nil {
			t.Errorf("Resync without drift = %v, %v", r, err)
		}
		if d := cmp.Diff(resync, f.take()); d != "" {
			t.Errorf("Resync without drift calls (-want +got):\n%s", d)
		}
	}

	// Drift: someone flushed the ruleset; someone edited a chain; someone
	// removed set elements (seen since a Resync recorded the full listing).
	for _, drift := range []func(){
		func() { f.shape = "" },
		func() { f.shape += "\n\tinserted by someone" },
		func() { f.elems = "" },
	} {
		drift()
		if r, err := a.Resync(ctx); !r || err != nil {
			t.Errorf("Resync after drift = %v, %v; want a repair", r, err)
		}
		calls := f.take()
		if d := cmp.Diff(append(load, "-s list table inet flock"), calls[len(calls)-6:]); d != "" {
			t.Errorf("Resync repair calls (-want +got):\n%s", d)
		}
		if r, err := a.Resync(ctx); r || err != nil {
			t.Errorf("Resync after a repair = %v, %v; want nothing to do", r, err)
		}
		f.take()
	}

	// A failed load is reported, and the next Apply of the same model
	// tries again.
	in.Policies = []networkingv1.NetworkPolicy{nptest.Policy("x", "deny", nil)}
	f.fail = errors.New("nft: exit status 1")
	if _, err := a.Apply(ctx, Translate(in)); err == nil || !strings.Contains(err.Error(), "load nftables table inet flock") {
		t.Errorf("Apply with nft failing = %v", err)
	}
	if r, err := a.Resync(ctx); r || err != nil {
		t.Errorf("Resync after a failed load = %v, %v; want nothing (the next Apply retries)", r, err)
	}
	f.take()
	if c, err := a.Apply(ctx, Translate(in)); !c || err != nil {
		t.Errorf("Apply after a failure = %v, %v; want a load", c, err)
	}
	if d := cmp.Diff(load, f.take()); d != "" {
		t.Errorf("retry calls (-want +got):\n%s", d)
	}

	// A model Render rejects never reaches nft.
	bad := &Model{Pods: []PodPolicy{{Iface: "bad name"}}}
	if _, err := a.Apply(ctx, bad); err == nil || len(f.take()) != 0 {
		t.Errorf("Apply of an unrenderable model = %v", err)
	}

	if existed, err := a.Delete(ctx); !existed || err != nil || f.shape != "" {
		t.Errorf("Delete = %v, %v, table %q; want the table gone", existed, err, f.shape)
	}
	if existed, err := a.Delete(ctx); existed || err != nil {
		t.Errorf("Delete without a table = %v, %v; want nothing there and no error", existed, err)
	}
	f.fail = errors.New("nft: exit status 1")
	if _, err := a.Delete(ctx); err == nil || !strings.Contains(err.Error(), "delete nftables table inet flock") {
		t.Errorf("Delete with nft failing = %v", err)
	}
}
