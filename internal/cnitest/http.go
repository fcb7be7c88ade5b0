package cnitest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// MetricsAddr is where the agent serves /metrics, /healthz and /readyz by
// default (metrics.DefaultAddr): the node namespace's loopback.
const MetricsAddr = "127.0.0.1:9983"

// HTTPGet fetches http://MetricsAddr/path inside the node's namespace (the
// socket is made there, so it reaches the node's loopback) and returns the
// status code and body.
func (n *Node) HTTPGet(ctx context.Context, path string) (int, []byte, error) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.WithNetNSPath(n.NS.Path, func(ns.NetNS) error {
			var err error
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}, Timeout: 15 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+MetricsAddr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s in %s: %w", path, n.NS.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
