package health

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestLoops(t *testing.T) {
	now := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	l := NewLoops()
	l.Now = func() time.Time { return now }
	pools := l.Register("pools", 30*time.Second)
	any := l.Register("anycast", 2*time.Second)
	l.Register("networkpolicy", time.Second) // never runs: waits for its caches
	if err := l.Live(); err != nil {
		t.Fatalf("fresh loops: %v", err)
	}
	pools.Pass(errors.New("no nodeconfig"))
	any.Pass(nil)
	now = now.Add(StuckAfter(2*time.Second) + time.Second)
	pools.Pass(nil) // failing is not stuck; a pass is a pass
	err := l.Live()
	if err == nil || !strings.Contains(err.Error(), "loop anycast") || strings.Contains(err.Error(), "pools") || strings.Contains(err.Error(), "networkpolicy") {
		t.Errorf("Live with anycast silent = %v, want it alone named (a loop that never started is not stuck)", err)
	}
	st := l.States()
	if len(st) != 3 || st[0].Name != "anycast" || st[2].Name != "pools" || st[2].Errors != 1 || !st[2].LastOK.Equal(now) {
		t.Errorf("States = %+v", st)
	}
	var nilLoops *Loops
	nilLoops.Register("x", time.Second).Pass(nil) // no-op, no panic
}

func TestHandle(t *testing.T) {
	mux := http.NewServeMux()
	ready := errors.New("nodeconfig: no NodeConfig for node n1")
	Handle(mux, func(context.Context) error { return nil }, func(context.Context) error { return ready })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tc := range []struct {
		path string
		code int
		body string
	}{{PathLive, 200, "ok\n"}, {PathReady, 503, "nodeconfig: no NodeConfig for node n1\n"}} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || string(b) != tc.body {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, resp.StatusCode, b, tc.code, tc.body)
		}
	}
	checks := Checks{{"a", func(context.Context) error { return nil }}, {"b", func(context.Context) error { return errors.New("down") }}}
	if err := checks.Ready(context.Background()); err == nil || err.Error() != "b: down" {
		t.Errorf("Ready = %v, want the failing check named", err)
	}
}
