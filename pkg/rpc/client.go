package rpc

import (
	"context"
	"fmt"
	"net"
	"time"
)

// UnreachableError means the agent could not be reached or did not answer;
// the plugin reports it as "try again later".
type UnreachableError struct{ Err error }

func (e *UnreachableError) Error() string { return "flock agent unreachable: " + e.Err.Error() }
func (e *UnreachableError) Unwrap() error { return e.Err }

// Call sends one request to the agent at socket and returns its response.
// The whole exchange is bounded by timeout.
func Call(ctx context.Context, socket string, req *Request, timeout time.Duration) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, &UnreachableError{Err: err}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if err := WriteMessage(conn, req); err != nil {
		return nil, &UnreachableError{Err: err}
	}
	var resp Response
	if err := ReadMessage(conn, MaxMessageSize, &resp); err != nil {
		return nil, &UnreachableError{Err: fmt.Errorf("%s %s: %w", req.Op, socket, err)}
	}
	return &resp, nil
}
