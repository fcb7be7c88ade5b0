package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServe(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if err := Serve(t.Context(), log, "", http.NewServeMux()); err != nil {
		t.Fatalf("empty addr: %v", err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	err = Serve(t.Context(), log, busy.Addr().String(), http.NewServeMux())
	if err == nil || !strings.Contains(err.Error(), `--metrics-addr "`+busy.Addr().String()+`"`) {
		t.Fatalf("busy addr: %v, want an error naming --metrics-addr and the value", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathMetrics, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "flock_up 1\n") })
	ctx, cancel := context.WithCancel(t.Context())
	if err := Serve(ctx, log, addr, mux, PathMetrics); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "flock_up 1\n" {
		t.Errorf("got %q", b)
	}
	cancel()
	// Closed with ctx: the address is free again.
	for range 100 {
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("still listening after ctx ended")
}
