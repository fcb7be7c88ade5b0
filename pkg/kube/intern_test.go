package kube

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"time"
	"weak"
)

// TestInternLabels: equal label sets share one map, different ones do not,
// an empty set is nil, and the shared map is a copy of the caller's.
func TestInternLabels(t *testing.T) {
	in := &labelInterner{m: map[string]weak.Pointer[sharedLabels]{}}
	src := map[string]string{"app": "web", "tier": "a"}
	a := in.intern(src)
	b := in.intern(map[string]string{"tier": "a", "app": "web"})
	c := in.intern(map[string]string{"app": "web"})
	if a != b || reflect.ValueOf(a.m()).Pointer() != reflect.ValueOf(b.m()).Pointer() {
		t.Error("equal label sets are not shared")
	}
	if a == c {
		t.Error("different label sets are shared")
	}
	src["app"] = "changed"
	if a.m()["app"] != "web" {
		t.Error("the shared set aliases the caller's map")
	}
	if in.intern(nil) != nil || in.intern(map[string]string{}).m() != nil {
		t.Error("an empty set is not nil")
	}
	// "a=b" and "c" must not collide with "a" = "b\x00c"-like spellings.
	if in.intern(map[string]string{"a": "b", "c": ""}) == in.intern(map[string]string{"a": "b=c"}) {
		t.Error("distinct sets with similar texts are shared")
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	runtime.KeepAlive(c)
}

// TestInternForgets: once no one holds a set, the interner drops it, so
// churn of uniquely labelled pods does not grow the table.
func TestInternForgets(t *testing.T) {
	in := &labelInterner{m: map[string]weak.Pointer[sharedLabels]{}}
	kept := in.intern(map[string]string{"app": "kept"})
	for i := range 1000 {
		in.intern(map[string]string{"statefulset.kubernetes.io/pod-name": fmt.Sprintf("db-%d", i)})
	}
	deadline := time.Now().Add(10 * time.Second)
	for in.size() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sets interned after GC, want 1 (the one still held)", in.size())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if again := in.intern(map[string]string{"app": "kept"}); again != kept {
		t.Error("a held set was forgotten")
	}
}
