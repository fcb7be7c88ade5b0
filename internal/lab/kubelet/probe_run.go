package kubelet

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeUserAgent is what kubelet sends, so servers that special-case
// probes behave as in a cluster.
const probeUserAgent = "kube-probe/1.37"

// probeFor builds the attempt function of a container's probe: exec runs
// the command in the pod's namespace with the container's environment;
// tcpSocket and httpGet connect from the node's namespace to the pod's
// primary IP (or the probe's host), as kubelet does from the host.
func (w *worker) probeFor(c *v1.Container, p *v1.Probe, env []string) probeFunc {
	switch {
	case p.Exec != nil:
		return func(ctx context.Context) error {
			if len(p.Exec.Command) == 0 {
				return errors.New("exec probe has no command")
			}
			var out bytes.Buffer
			cmd := w.k.host.command(w.rec.Netns, p.Exec.Command, env, "/")
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := runCmd(ctx, cmd); err != nil {
				return fmt.Errorf("%s: %w: %s", strings.Join(p.Exec.Command, " "), err, trim(out.String()))
			}
			return nil
		}
	case p.TCPSocket != nil:
		return func(ctx context.Context) error {
			addr, err := w.probeAddr(c, p.TCPSocket.Host, p.TCPSocket.Port)
			if err != nil {
				return err
			}
			conn, err := w.k.host.dial(ctx, "tcp", addr)
			if err != nil {
				return fmt.Errorf("dial tcp %s: %w", addr, err)
			}
			return conn.Close()
		}
	case p.HTTPGet != nil:
		return func(ctx context.Context) error { return w.httpProbe(ctx, c, p.HTTPGet) }
	}
	return func(context.Context) error {
		return errors.New("only exec, tcpSocket and httpGet probes are supported by flock-lab's kubelet-lite")
	}
}

// probeAddr is host:port of a probe; the host defaults to the pod's
// primary IP and a named port is looked up in the container's ports.
func (w *worker) probeAddr(c *v1.Container, host string, port intstr.IntOrString) (string, error) {
	if host == "" {
		w.mu.Lock()
		if len(w.snap.PodIPs) > 0 {
			host = w.snap.PodIPs[0]
		}
		w.mu.Unlock()
		if host == "" {
			return "", errors.New("pod has no IP yet")
		}
	}
	n, err := resolvePort(c, port)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

func resolvePort(c *v1.Container, port intstr.IntOrString) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, port.StrVal)
}

// httpProbe is kubelet's httpGet: any status from 200 to 399 succeeds,
// HTTPS certificates are not verified, redirects are followed.
func (w *worker) httpProbe(ctx context.Context, c *v1.Container, g *v1.HTTPGetAction) error {
	addr, err := w.probeAddr(c, g.Host, g.Port)
	if err != nil {
		return err
	}
	u, err := url.Parse(g.Path)
	if err != nil {
		return fmt.Errorf("parse probe path %q: %w", g.Path, err)
	}
	u.Scheme = strings.ToLower(string(g.Scheme))
	if u.Scheme == "" {
		u.Scheme = "http"
	}
	u.Host = addr
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", probeUserAgent)
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	tr := &http.Transport{
		DialContext:       w.k.host.dial,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // kubelet does not verify probe targets either
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: HTTP %d: %s", u, resp.StatusCode, trim(string(body)))
	}
	return nil
}

// trim shortens command output for an event message.
func trim(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 256 {
		s = s[:256] + "…"
	}
	return s
}
