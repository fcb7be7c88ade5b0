package policy

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
)

// Add puts the pods of m into the loaded table in one small transaction,
// without reloading it: their entries in the dispatch maps, and the
// allow-list chains (with their sets) the table does not have yet. It is
// the CNI ADD fast path: loading a whole table costs a few hundred
// milliseconds at a thousand policies, this a few, and a new pod needs its
// own rules in place before it is reachable, not yet everyone else's rules
// naming it (which the next Apply brings; until then they leave it out,
// failing closed).
//
// m normally holds just the new pods, translated against the whole cluster.
// Add returns false, and leaves the kernel alone, when it cannot: nothing
// loaded yet, a pod's interface already in the table (a repeated ADD), or a
// chain name the table uses for different content; the caller then applies
// the full model instead. An error means nft failed and the table is as it
// was (nft -f is atomic). After an Add the next Apply always loads.
func (a *Applier) Add(ctx context.Context, m *Model) (bool, error) {
	r, err := render(m)
	if err != nil {
		return false, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.script == nil {
		return false, nil
	}
	for _, i := range r.ifaces {
		if a.ifaces[i] {
			return false, nil
		}
	}
	var fresh []*chain
	for _, name := range slices.Sorted(maps.Keys(r.chains)) {
		c := r.chains[name]
		if old, ok := a.chains[name]; ok {
			if !old.same(c) {
				return false, nil
			}
			continue
		}
		fresh = append(fresh, c)
	}
	if script := addScript(fresh, r); script != nil {
		if _, err := a.nft.Run(ctx, script, "-f", "-"); err != nil {
			return false, fmt.Errorf("add to nftables table %s %s: %w", TableFamily, TableName, err)
		}
	}
	// Unrestricted pods need nothing in the kernel, but are recorded too:
	// a second Add for the same interface is a repeated ADD, which a full
	// Apply handles.
	a.added = true
	for _, c := range fresh {
		a.chains[c.name] = c.kept()
	}
	for _, i := range r.ifaces {
		a.ifaces[i] = true
	}
	return true, nil
}

const addHeader = "# flock NetworkPolicy: pods added by CNI ADD, until the next full load.\n"

// addScript extends flock's table: a table block declares the new chains
// and sets (a block adds to an existing table), then the map and set elements. It
// is nil when there is nothing to add. Against a missing table the block
// would create one, but the map elements then fail and nft loads nothing.
//
// The new pods' drop counters are declared in the block too, and their
// map elements added before the dispatch maps', so that no packet the new
// entries drop goes uncounted.
func addScript(chains []*chain, r *rendered) []byte {
	if len(chains)+len(r.inElems)+len(r.outElems)+len(r.hairElems) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteString(addHeader)
	if len(chains)+len(r.counters) > 0 {
		fmt.Fprintf(&b, "table %s %s {\n", TableFamily, TableName)
		writeCounters(&b, r.counters)
		for i, c := range chains {
			if i > 0 {
				b.WriteByte('\n')
			}
			c.write(&b)
		}
		b.WriteString("}\n")
	}
	for _, m := range []struct {
		name  string
		elems []string
	}{{ingressDrops, r.inDrops}, {egressDrops, r.outDrops}, {ingressMap, r.inElems}, {egressMap, r.outElems}, {hairpinSet, r.hairElems}} {
		if len(m.elems) == 0 {
			continue
		}
		fmt.Fprintf(&b, "add element %s %s %s {\n", TableFamily, TableName, m.name)
		writeList(&b, "\t", m.elems)
		b.WriteString("}\n")
	}
	return b.Bytes()
}
