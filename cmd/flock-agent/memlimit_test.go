package main

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

func TestSetMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	noEnv := func(string) string { return "" }

	if got, err := setMemoryLimit(64, noEnv); err != nil || got != "64 MiB" || debug.SetMemoryLimit(-1) != 64<<20 {
		t.Errorf("setMemoryLimit(64) = %q, %v; limit %d", got, err, debug.SetMemoryLimit(-1))
	}
	// The environment wins, and the limit Go took from it stays.
	debug.SetMemoryLimit(100 << 20)
	env := func(k string) string {
		if k == "GOMEMLIMIT" {
			return "100MiB"
		}
		return ""
	}
	if got, err := setMemoryLimit(64, env); err != nil || got != "GOMEMLIMIT=100MiB" || debug.SetMemoryLimit(-1) != 100<<20 {
		t.Errorf("with GOMEMLIMIT: %q, %v; limit %d", got, err, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(math.MaxInt64)
	if got, err := setMemoryLimit(0, noEnv); err != nil || got != "none" || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("setMemoryLimit(0) = %q, %v; limit %d", got, err, debug.SetMemoryLimit(-1))
	}
	for _, bad := range []int{-1, math.MaxInt} {
		if _, err := setMemoryLimit(bad, noEnv); err == nil || !strings.Contains(err.Error(), "--memory-limit-mib") {
			t.Errorf("setMemoryLimit(%d) = %v, want an error naming the flag", bad, err)
		}
	}
}
