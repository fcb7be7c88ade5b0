package policy

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Guard keeps the anti-spoofing table in the kernel equal to the last set
// of pod sources it was given. It is safe for concurrent use; the caller
// serialises building the set with applying it, so that an older set never
// overwrites a newer one.
type Guard struct {
	nft Runner

	mu sync.Mutex
	// script is the last script loaded successfully; nil before the first
	// and after a failure.
	script []byte
}

// NewGuard returns a Guard that runs nft through r.
func NewGuard(r Runner) *Guard { return &Guard{nft: r} }

// Apply renders the sources and loads them in one transaction, unless the
// script equals the last one loaded; changed says whether the kernel was
// written.
func (g *Guard) Apply(ctx context.Context, pods []Source) (changed bool, err error) {
	script, err := RenderGuard(pods)
	if err != nil {
		return false, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.script != nil && bytes.Equal(script, g.script) {
		return false, nil
	}
	return true, g.load(ctx, script)
}

// Resync loads the last script again (self-heal: a deleted table, chain or
// element comes back; the script is idempotent and keeps the counter). It
// does nothing before the first successful Apply.
func (g *Guard) Resync(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.script == nil {
		return nil
	}
	return g.load(ctx, g.script)
}

func (g *Guard) load(ctx context.Context, script []byte) error {
	g.script = nil
	if _, err := g.nft.Run(ctx, script, "-f", "-"); err != nil {
		return fmt.Errorf("load nftables table %s %s: %w", GuardFamily, GuardTable, err)
	}
	g.script = script
	return nil
}

// Drops are the packets the anti-spoofing rule dropped since the table was
// created.
type Drops struct{ Packets, Bytes uint64 }

var counterLine = regexp.MustCompile(`packets (\d+) bytes (\d+)`)

// Drops reads the drop counter from the kernel: what a metric of spoofed
// packets exports.
func (g *Guard) Drops(ctx context.Context) (Drops, error) {
	out, err := g.nft.Run(ctx, nil, "list", "counter", GuardFamily, GuardTable, GuardCounter)
	if err != nil {
		return Drops{}, fmt.Errorf("read nftables counter %s %s %s: %w", GuardFamily, GuardTable, GuardCounter, err)
	}
	return parseCounter(out)
}

func parseCounter(out []byte) (Drops, error) {
	m := counterLine.FindSubmatch(out)
	if m == nil {
		return Drops{}, fmt.Errorf("nftables counter %s: no packets/bytes in %q", GuardCounter, firstLines(string(out), 3))
	}
	p, err1 := strconv.ParseUint(string(m[1]), 10, 64)
	b, err2 := strconv.ParseUint(string(m[2]), 10, 64)
	if err1 != nil || err2 != nil {
		return Drops{}, fmt.Errorf("nftables counter %s: bad numbers in %q", GuardCounter, m[0])
	}
	return Drops{Packets: p, Bytes: b}, nil
}

// Delete removes the anti-spoofing table, if there is one (flock-agent
// --anti-spoofing=false): existed says whether there was one.
func (g *Guard) Delete(ctx context.Context) (existed bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.script = nil
	out, err := g.nft.Run(ctx, nil, "list", "tables", GuardFamily)
	if err != nil {
		return false, fmt.Errorf("list nftables tables: %w", err)
	}
	for line := range strings.Lines(string(out)) {
		existed = existed || strings.TrimSpace(line) == "table "+GuardFamily+" "+GuardTable
	}
	script := fmt.Sprintf("table %s %s\ndelete table %s %s\n", GuardFamily, GuardTable, GuardFamily, GuardTable)
	if _, err := g.nft.Run(ctx, []byte(script), "-f", "-"); err != nil {
		return existed, fmt.Errorf("delete nftables table %s %s: %w", GuardFamily, GuardTable, err)
	}
	return existed, nil
}
