package kube

import (
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"weak"
)

// Pods of one workload carry the same labels, and a cluster of 30,000 pods
// has a few thousand distinct label sets at most; a map per pod would be
// most of a compact pod record (a small map is a few hundred bytes). The
// cluster pod cache therefore shares one read-only map per distinct set.
// The interner holds the maps weakly: a set is forgotten once no cached pod
// uses it, so churn of uniquely labelled pods (StatefulSets) cannot grow
// it.

// sharedLabels is one interned label set; the map is shared, read-only.
type sharedLabels struct{ set map[string]string }

// m is the set's map; nil for a nil set.
func (l *sharedLabels) m() map[string]string {
	if l == nil {
		return nil
	}
	return l.set
}

// labelInterner maps a label set's canonical text to its shared Labels.
type labelInterner struct {
	mu sync.Mutex
	m  map[string]weak.Pointer[sharedLabels]
}

// labelSets is the process's interner: the shared sets are read-only, so
// one table serves every informer.
var labelSets = &labelInterner{m: map[string]weak.Pointer[sharedLabels]{}}

// intern returns the shared set equal to m (nil for an empty set). The
// caller keeps the returned pointer for as long as it uses the map.
func (in *labelInterner) intern(m map[string]string) *sharedLabels {
	if len(m) == 0 {
		return nil
	}
	key := labelsKey(m)
	in.mu.Lock()
	defer in.mu.Unlock()
	if wp, ok := in.m[key]; ok {
		if l := wp.Value(); l != nil {
			return l
		}
	}
	l := &sharedLabels{set: maps.Clone(m)}
	in.m[key] = weak.Make(l)
	runtime.AddCleanup(l, in.forget, key)
	return l
}

// forget drops a set no pod holds any more, unless it was interned again.
func (in *labelInterner) forget(key string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if wp, ok := in.m[key]; ok && wp.Value() == nil {
		delete(in.m, key)
	}
}

// size is how many sets are interned (for tests).
func (in *labelInterner) size() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.m)
}

// labelsKey is the canonical text of a label set: sorted key=value pairs,
// separated by a byte neither keys nor values may hold.
func labelsKey(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	return b.String()
}
