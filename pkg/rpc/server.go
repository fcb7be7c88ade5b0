package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// Handler answers validated requests.
type Handler interface {
	Handle(ctx context.Context, req *Request) *Response
}

// readTimeout bounds how long a client may take to send its request, so a
// stuck or hostile client cannot hold a goroutine forever.
const readTimeout = 10 * time.Second

// Listen opens the agent's socket at path with mode 0600. A stale socket
// left by a previous agent is replaced; a live one is an error, so two
// agents never fight over one node.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: another agent is serving it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen %s: remove stale socket: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return ln, nil
}

// Serve answers connections on ln until ctx is done, then waits for the
// calls in flight.
func Serve(ctx context.Context, ln net.Listener, h Handler, log *slog.Logger) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConn(ctx, conn, h, log)
		}()
	}
}

func serveConn(ctx context.Context, conn net.Conn, h Handler, log *slog.Logger) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
	resp := answer(ctx, conn, h, log)
	if resp == nil {
		return
	}
	_ = conn.SetWriteDeadline(time.Now().Add(readTimeout))
	if err := WriteMessage(conn, resp); err != nil {
		log.Warn("rpc reply failed", "err", err)
	}
}

func answer(ctx context.Context, conn net.Conn, h Handler, log *slog.Logger) (resp *Response) {
	var req Request
	if err := ReadMessage(conn, MaxMessageSize, &req); err != nil {
		if errors.Is(err, ErrEmpty) {
			return nil
		}
		log.Warn("rpc request rejected", "err", err)
		return ErrorResponse(types.ErrDecodingFailure, "malformed request", err)
	}
	if err := req.Validate(); err != nil {
		log.Warn("rpc request rejected", "op", req.Op, "container", req.ContainerID, "err", err)
		return ErrorResponse(types.ErrInvalidNetworkConfig, "invalid request", err)
	}
	defer func() {
		if p := recover(); p != nil {
			log.Error("rpc handler panicked", "op", req.Op, "container", req.ContainerID, "panic", p, "stack", string(debug.Stack()))
			resp = ErrorResponse(types.ErrInternal, "internal error", fmt.Errorf("%v", p))
		}
	}()
	resp = h.Handle(ctx, &req)
	if resp == nil {
		resp = &Response{}
	}
	return resp
}

// ErrorResponse builds an error reply.
func ErrorResponse(code uint, msg string, err error) *Response {
	e := &Error{Code: code, Msg: msg}
	if err != nil {
		e.Details = err.Error()
	}
	return &Response{Error: e}
}
