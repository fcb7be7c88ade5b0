package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Check is one condition of readiness: nil when it holds, else why not.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Checks are the conditions the agent must meet to network pods.
type Checks []Check

// Ready runs every check and joins the failures, each named. It is the one
// readiness function of the agent.
func (cs Checks) Ready(ctx context.Context) error {
	var errs []error
	for _, c := range cs {
		if err := c.Check(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// The paths Handler serves.
const (
	PathLive  = "/healthz"
	PathReady = "/readyz"
)

// Handle serves /healthz with live and /readyz with ready on mux: 200 and
// "ok", or 503 and the reasons, one a line (as kube-apiserver's do).
func Handle(mux *http.ServeMux, live, ready func(context.Context) error) {
	serve := func(f func(context.Context) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			if err := f(r.Context()); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "%v\n", err)
				return
			}
			fmt.Fprintln(w, "ok")
		}
	}
	mux.HandleFunc("GET "+PathLive, serve(live))
	mux.HandleFunc("GET "+PathReady, serve(ready))
}
