package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Serve listens on addr and serves mux there until ctx ends, for the
// agent's and the controller's --metrics-addr: the listen error names the
// flag and the value, and the paths mux serves are logged once. An empty
// addr serves nothing.
func Serve(ctx context.Context, log *slog.Logger, addr string, mux *http.ServeMux, paths ...string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %q: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "addr", addr, "err", err)
		}
	}()
	log.Info("metrics serving", "addr", ln.Addr().String(), "paths", strings.Join(paths, " "))
	return nil
}
