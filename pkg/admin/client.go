package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Client reads the admin API of the agent at Socket.
type Client struct {
	Socket string
	http   *http.Client
}

// NewClient returns a client of the agent's admin socket; timeout bounds
// each request.
func NewClient(socket string, timeout time.Duration) *Client {
	var d net.Dialer
	return &Client{Socket: socket, http: &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", socket)
			},
		},
	}}
}

// ReachError is a request that got no answer from the agent.
type ReachError struct {
	Socket string
	Err    error
}

func (e *ReachError) Error() string {
	return fmt.Sprintf("cannot reach the agent at %s: %v", e.Socket, e.Err)
}

func (e *ReachError) Unwrap() error { return e.Err }

// Raw returns the body of GET path, which must answer 200.
func (c *Client) Raw(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://flock-agent"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The URL's made-up host says nothing; the socket is named instead.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &ReachError{Socket: c.Socket, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &ReachError{Socket: c.Socket, Err: fmt.Errorf("read answer to GET %s: %w", path, err)}
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = string(body)
		}
		return nil, fmt.Errorf("agent at %s answered GET %s with %s: %s", c.Socket, path, resp.Status, e.Error)
	}
	return body, nil
}

// Get decodes the answer to GET path into v.
func (c *Client) Get(ctx context.Context, path string, v any) error {
	body, err := c.Raw(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode answer to GET %s from %s: %w", path, c.Socket, err)
	}
	return nil
}
