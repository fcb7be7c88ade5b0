package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// DropCount is what one local pod's drop counter says: the packets and
// bytes policy dropped for it in one direction.
type DropCount struct {
	Iface   string
	Ingress bool
	Packets uint64
	Bytes   uint64
}

// counterValue is one counter as nft lists it.
type counterValue struct{ packets, bytes uint64 }

// ParseCounters reads `nft -j list counters table …`: the named counters
// of flock's table by name. Anything else in the listing is skipped.
func ParseCounters(b []byte) (map[string]counterValue, error) {
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Family  string `json:"family"`
				Table   string `json:"table"`
				Name    string `json:"name"`
				Packets uint64 `json:"packets"`
				Bytes   uint64 `json:"bytes"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse nft counters: %w", err)
	}
	out := map[string]counterValue{}
	for _, o := range doc.Nftables {
		c := o.Counter
		if c == nil || c.Family != TableFamily || c.Table != TableName || c.Name == "" {
			continue
		}
		out[c.Name] = counterValue{c.Packets, c.Bytes}
	}
	return out, nil
}

func (a *Applier) counters(ctx context.Context) (map[string]counterValue, error) {
	out, err := a.nft.Run(ctx, nil, "-j", "list", "counters", "table", TableFamily, TableName)
	if err != nil {
		return nil, fmt.Errorf("list nftables counters of %s %s: %w", TableFamily, TableName, err)
	}
	return ParseCounters(out)
}

// keepCounts adds what the table's counters say now to the counts kept
// from earlier loads, just before a load replaces the table (and sets its
// counters to zero), so that drop counts only grow. Packets dropped between
// this read and the load are lost; a table that is not there (a first
// start, a flushed ruleset) keeps nothing. The caller holds mu.
func (a *Applier) keepCounts(ctx context.Context) {
	cur, err := a.counters(ctx)
	if err != nil {
		return
	}
	if a.dropBase == nil {
		a.dropBase = map[string]counterValue{}
	}
	for name, v := range cur {
		b := a.dropBase[name]
		a.dropBase[name] = counterValue{b.packets + v.packets, b.bytes + v.bytes}
	}
}

// pruneCounts forgets the kept counts of pods the loaded table has no
// counter for (pods gone from the node), so the counts stay bounded by the
// node's pods. The caller holds mu.
func (a *Applier) pruneCounts(names []string) {
	for name := range a.dropBase {
		if !slices.Contains(names, name) {
			delete(a.dropBase, name)
		}
	}
}

// Drops reads every local pod's drop counters: what the table counts now,
// plus what it counted before the loads that replaced it since the agent
// started (and before the first, what a previous agent's table counted).
func (a *Applier) Drops(ctx context.Context) ([]DropCount, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur, err := a.counters(ctx)
	if err != nil {
		return nil, err
	}
	var out []DropCount
	for name, v := range cur {
		d := DropCount{Packets: v.packets, Bytes: v.bytes}
		var ok bool
		if d.Iface, ok = strings.CutPrefix(name, DropCounterIngress); ok {
			d.Ingress = true
		} else if d.Iface, ok = strings.CutPrefix(name, DropCounterEgress); !ok {
			continue // a counter of someone else's
		}
		b := a.dropBase[name]
		d.Packets += b.packets
		d.Bytes += b.bytes
		out = append(out, d)
	}
	slices.SortFunc(out, func(x, y DropCount) int {
		if c := strings.Compare(x.Iface, y.Iface); c != 0 {
			return c
		}
		if x.Ingress == y.Ingress {
			return 0
		}
		if x.Ingress {
			return -1
		}
		return 1
	})
	return out, nil
}
