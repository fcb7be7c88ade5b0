package policy

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
)

// Runner runs the nft binary with args, feeding it stdin when that is not
// nil, and returns what nft wrote to stdout. NFT is the real one.
type Runner interface {
	Run(ctx context.Context, stdin []byte, args ...string) ([]byte, error)
}

// Applier keeps flock's table in the kernel equal to the last model it was
// given. It is safe for concurrent use.
//
// Drift is found by comparing `nft list` output with what the kernel printed
// right after the last load (the kernel prints sets and maps in its own
// order and form, so a listing is compared with a listing, never with the
// script). Listing every set element costs about as much as loading them,
// so Apply, on the pod-add path, records only the table's shape (`nft -t`:
// chains, rules, set declarations) and the two dispatch maps, which together
// catch a deleted or flushed table, chain or rule and a pod missing from the
// maps; the first Resync after a load records the full listing, after which
// edits to set elements are caught too.
type Applier struct {
	nft Runner

	mu sync.Mutex
	// script is the last script loaded successfully; nil before the first
	// and after a failure (so the next Apply loads again).
	script []byte
	shape  []byte // shape listing right after the load
	full   []byte // full listing, recorded by the first Resync after the load

	// What the table holds, for Add: the allow-list chains and the pods'
	// interfaces of the last load, and of every Add since.
	chains map[string]*chain
	ifaces map[string]bool
	// added is set when Add extended the table since the last load: the
	// table is then more than script, so Apply must not skip and Resync
	// must not restore script.
	added bool

	// dropBase are the drop counts of tables since replaced (counters.go),
	// stats what the last script declares.
	dropBase map[string]counterValue
	stats    Stats
}

// NewApplier returns an Applier that runs nft through r.
func NewApplier(r Runner) *Applier { return &Applier{nft: r} }

// Apply renders the model and loads it in one transaction. It does nothing
// when the script equals the last one loaded successfully; changed says
// whether the kernel was written.
func (a *Applier) Apply(ctx context.Context, m *Model) (changed bool, err error) {
	r, err := render(m)
	if err != nil {
		return false, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.script != nil && !a.added && bytes.Equal(r.script, a.script) {
		return false, nil
	}
	if err := a.load(ctx, r.script); err != nil {
		return true, err
	}
	a.pruneCounts(r.counters)
	a.stats = ScriptStats(r.script)
	a.chains = kept(r.chains)
	a.ifaces = make(map[string]bool, len(r.ifaces))
	for _, i := range r.ifaces {
		a.ifaces[i] = true
	}
	return true, nil
}

// Resync repairs drift: when the kernel's table is missing or differs from
// what the last load left, the last script is loaded again. It does nothing
// before the first successful Apply, and after an Add until the next Apply
// (reloading the script would take the added pods out again).
func (a *Applier) Resync(ctx context.Context) (repaired bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.script == nil || a.added {
		return false, nil
	}
	// A failed listing is a missing table (or a broken nft, which the load
	// will report).
	shape, err := a.listShape(ctx)
	if err == nil && bytes.Equal(shape, a.shape) {
		full, err := a.list(ctx)
		if err == nil && a.full == nil {
			a.full = full
			return false, nil
		}
		if err == nil && bytes.Equal(full, a.full) {
			return false, nil
		}
	}
	if err := a.load(ctx, a.script); err != nil {
		return true, err
	}
	full, err := a.list(ctx)
	if err != nil {
		return true, err
	}
	a.full = full
	return true, nil
}

// Delete removes flock's table, if there is one, and forgets what was
// applied; existed says whether there was one. An agent that does not
// enforce policy calls it at start, so that a table an earlier run loaded
// stops filtering; other tables are never touched.
func (a *Applier) Delete(ctx context.Context) (existed bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.forget()
	out, err := a.nft.Run(ctx, nil, "list", "tables", TableFamily)
	if err != nil {
		return false, fmt.Errorf("list nftables tables: %w", err)
	}
	for line := range strings.Lines(string(out)) {
		existed = existed || strings.TrimSpace(line) == "table "+TableFamily+" "+TableName
	}
	// Declared first, the table is there to delete even when it was not
	// (nft 1.0.6 has no `destroy table`): one transaction, no error either
	// way.
	script := fmt.Sprintf("table %s %s\ndelete table %s %s\n", TableFamily, TableName, TableFamily, TableName)
	if _, err := a.nft.Run(ctx, []byte(script), "-f", "-"); err != nil {
		return existed, fmt.Errorf("delete nftables table %s %s: %w", TableFamily, TableName, err)
	}
	return existed, nil
}

// forget drops what the Applier knows of the table, so that the next Apply
// loads whatever it is given.
func (a *Applier) forget() {
	a.script, a.shape, a.full = nil, nil, nil
	a.chains, a.ifaces, a.added = nil, nil, false
}

// load replaces the table with script. Apply records the chains and
// interfaces; Resync's reload keeps those of the script it reloads.
func (a *Applier) load(ctx context.Context, script []byte) error {
	chains, ifaces := a.chains, a.ifaces
	a.forget()
	a.keepCounts(ctx)
	if _, err := a.nft.Run(ctx, script, "-f", "-"); err != nil {
		return fmt.Errorf("load nftables table %s %s: %w", TableFamily, TableName, err)
	}
	shape, err := a.listShape(ctx)
	if err != nil {
		return err
	}
	a.script, a.shape = script, shape
	a.chains, a.ifaces = chains, ifaces
	return nil
}

// listShape lists the table without set elements, then the dispatch maps
// with theirs.
func (a *Applier) listShape(ctx context.Context) ([]byte, error) {
	// -s (stateless): the drop counters' values are no drift.
	shape, err := a.nft.Run(ctx, nil, "-s", "-t", "list", "table", TableFamily, TableName)
	if err != nil {
		return nil, fmt.Errorf("list nftables table %s %s: %w", TableFamily, TableName, err)
	}
	for _, m := range []string{ingressMap, egressMap} {
		out, err := a.nft.Run(ctx, nil, "-s", "list", "map", TableFamily, TableName, m)
		if err != nil {
			return nil, fmt.Errorf("list nftables map %s: %w", m, err)
		}
		shape = append(shape, out...)
	}
	return shape, nil
}

func (a *Applier) list(ctx context.Context) ([]byte, error) {
	out, err := a.nft.Run(ctx, nil, "-s", "list", "table", TableFamily, TableName)
	if err != nil {
		return nil, fmt.Errorf("list nftables table %s %s: %w", TableFamily, TableName, err)
	}
	return out, nil
}

// Verify tells whether the kernel's table is still what the last load (or
// Resync) left, without repairing it: nil when it is, or nothing was
// loaded yet; else what differs. It is for operators (flockctl doctor);
// the periodic Resync repairs.
func (a *Applier) Verify(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.script == nil || a.added {
		return nil
	}
	shape, err := a.listShape(ctx)
	if err != nil {
		return fmt.Errorf("table %s %s is missing: %w", TableFamily, TableName, err)
	}
	if !bytes.Equal(shape, a.shape) {
		return fmt.Errorf("table %s %s differs from what the agent loaded (chains, rules or pods changed)", TableFamily, TableName)
	}
	if a.full != nil {
		full, err := a.list(ctx)
		if err != nil {
			return err
		}
		if !bytes.Equal(full, a.full) {
			return fmt.Errorf("table %s %s differs from what the agent loaded (set elements changed)", TableFamily, TableName)
		}
	}
	return nil
}
