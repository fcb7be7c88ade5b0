package model

import (
	"fmt"
	"net/netip"
	"time"
)

// Pools are what the overlap check needs of a NodeConfig: its identity,
// its age and its pools (the zero Prefix: no pool of that family).
type Pools struct {
	Name    string
	Created time.Time
	Pool6   netip.Prefix
	Pool4   netip.Prefix
}

// PoolsFromSpec parses a NodeConfig's spec.cidr6 and spec.cidr4 as the
// overlap check sees them: a value that does not parse is no pool (that
// NodeConfig is rejected on its own merits, and claims nothing).
func PoolsFromSpec(name string, created time.Time, cidr6, cidr4 string) Pools {
	p := Pools{Name: name, Created: created}
	p.Pool6, _ = parsePool("spec.cidr6", cidr6, true)
	p.Pool4, _ = parsePool("spec.cidr4", cidr4, false)
	return p
}

// OverlapError says that a NodeConfig's pool overlaps the pool of another,
// older NodeConfig: two nodes would hand out, and announce, the same
// addresses.
type OverlapError struct {
	Node, Other   string
	Field         string // spec.cidr6 or spec.cidr4
	Pool, OtherOf netip.Prefix
}

func (e *OverlapError) Error() string {
	return fmt.Sprintf("nodeconfig %s: %s %s overlaps %s %s of NodeConfig %s, which is older: pools of different nodes must not overlap",
		e.Node, e.Field, e.Pool, e.Field, e.OtherOf, e.Other)
}

// Overlaps reports whether two prefixes share an address; prefixes of
// different families never do.
func Overlaps(a, b netip.Prefix) bool {
	return a.IsValid() && b.IsValid() && a.Overlaps(b)
}

// older reports whether a was there before b: created earlier, or at the
// same second with the smaller name, so every agent picks the same winner.
func older(a, b Pools) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	return a.Name < b.Name
}

// CheckOverlap returns an *OverlapError when self's pools overlap those of
// a NodeConfig in others that is older than self, nil otherwise. The older
// one keeps its pools: a new NodeConfig that copies a pool by mistake is
// rejected, and the node already using it keeps working. others may
// contain self (skipped by name); the first overlap in others' order is
// reported, so pass them sorted for a stable message.
func CheckOverlap(self Pools, others []Pools) error {
	for _, o := range others {
		if o.Name == self.Name || !older(o, self) {
			continue
		}
		if Overlaps(self.Pool6, o.Pool6) {
			return &OverlapError{Node: self.Name, Other: o.Name, Field: "spec.cidr6", Pool: self.Pool6, OtherOf: o.Pool6}
		}
		if Overlaps(self.Pool4, o.Pool4) {
			return &OverlapError{Node: self.Name, Other: o.Name, Field: "spec.cidr4", Pool: self.Pool4, OtherOf: o.Pool4}
		}
	}
	return nil
}
