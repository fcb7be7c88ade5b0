package rpc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/google/go-cmp/cmp"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    PodArgs
		wantErr string
	}{
		{in: "", want: PodArgs{}},
		{in: "IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-5d78c9869d-abcde;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1-2-3",
			want: PodArgs{Namespace: "kube-system", Name: "coredns-5d78c9869d-abcde", InfraID: "abc", UID: "1-2-3", IgnoreUnknown: true}},
		{in: "FOO=bar;;K8S_POD_NAME=web.0", want: PodArgs{Name: "web.0"}},
		{in: "K8S_POD_NAME", wantErr: `CNI_ARGS entry "K8S_POD_NAME" is not KEY=VALUE`},
		{in: "=x", wantErr: "not KEY=VALUE"},
		{in: "K8S_POD_NAMESPACE=../etc", wantErr: `K8S_POD_NAMESPACE "../etc" is not a DNS-1123 label`},
		{in: "K8S_POD_NAME=a/b", wantErr: `K8S_POD_NAME "a/b" is not a DNS-1123 subdomain`},
		{in: "K8S_POD_NAME=Web", wantErr: "DNS-1123"},
	} {
		got, err := ParseArgs(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseArgs(%q) error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseArgs(%q): %v", tc.in, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseArgs(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Request{Op: OpAdd, ContainerID: "abc", IfName: "eth0", Netns: "/run/netns/x"}
	for _, tc := range []struct {
		name    string
		mod     func(*Request)
		wantErr string
	}{
		{"ok", func(*Request) {}, ""},
		{"op", func(r *Request) { r.Op = "EXPLODE" }, `op "EXPLODE"`},
		{"container id", func(r *Request) { r.ContainerID = "../x" }, `containerID "../x"`},
		{"empty container id", func(r *Request) { r.ContainerID = "" }, `containerID ""`},
		{"ifname", func(r *Request) { r.IfName = "eth0/../x" }, `ifName "eth0/../x"`},
		{"long ifname", func(r *Request) { r.IfName = "abcdefghijklmnop" }, "ifName"},
		{"netns missing", func(r *Request) { r.Netns = "" }, "netns is empty"},
		{"netns relative", func(r *Request) { r.Netns = "run/netns/x" }, `netns "run/netns/x"`},
		{"del without netns", func(r *Request) { r.Op, r.Netns = OpDel, "" }, ""},
		{"mtu", func(r *Request) { r.MTU = 9 }, "mtu 9"},
		{"args", func(r *Request) { r.Args = "junk" }, `CNI_ARGS entry "junk"`},
		{"check without prevResult", func(r *Request) { r.Op = OpCheck }, "prevResult"},
		{"gc bad attachment", func(r *Request) {
			r.Op, r.ValidAttachments = OpGC, []Attachment{{ContainerID: "ok", IfName: "eth0"}, {ContainerID: "a b", IfName: "eth0"}}
		}, "validAttachments[1]"},
	} {
		r := ok
		tc.mod(&r)
		err := r.Validate()
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

type echo struct{ calls int }

func (e *echo) Handle(_ context.Context, r *Request) *Response {
	e.calls++
	if r.ContainerID == "panic" {
		panic("boom")
	}
	return &Response{Result: &types100.Result{CNIVersion: "1.1.0"}}
}

func serve(t *testing.T, h Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Serve(ctx, ln, h, discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return sock
}

func TestServeRoundTrip(t *testing.T) {
	h := &echo{}
	sock := serve(t, h)
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	resp, err := Call(context.Background(), sock, &Request{Op: OpStatus}, 5*time.Second)
	if err != nil || resp.Error != nil || resp.Result == nil {
		t.Fatalf("Call: %+v %v", resp, err)
	}
	// A panicking handler gets an error reply and the server keeps serving.
	resp, err = Call(context.Background(), sock, &Request{Op: OpDel, ContainerID: "panic", IfName: "eth0"}, 5*time.Second)
	if err != nil || resp.Error == nil || resp.Error.Code != types.ErrInternal {
		t.Errorf("panic: %+v %v", resp, err)
	}
	if _, err := Call(context.Background(), sock, &Request{Op: OpStatus}, 5*time.Second); err != nil {
		t.Errorf("server dead after a panic: %v", err)
	}
}

func TestServeMalformed(t *testing.T) {
	h := &echo{}
	sock := serve(t, h)
	for _, tc := range []struct {
		name string
		send []byte
		code uint
	}{
		{"not json", []byte("hello\n"), types.ErrDecodingFailure},
		{"trailing", []byte(`{"op":"STATUS"} {"op":"STATUS"}` + "\n"), types.ErrDecodingFailure},
		{"wrong type", []byte(`{"op":5}` + "\n"), types.ErrDecodingFailure},
		{"invalid", []byte(`{"op":"ADD","containerID":"x"}` + "\n"), types.ErrInvalidNetworkConfig},
		{"oversized", append(bytes.Repeat([]byte("a"), MaxMessageSize+10), '\n'), types.ErrDecodingFailure},
		{"no newline", []byte(`{"op":"FOO"}`), types.ErrInvalidNetworkConfig},
	} {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		go func() { c.Write(tc.send); c.(*net.UnixConn).CloseWrite() }()
		var resp Response
		err = ReadMessage(c, MaxMessageSize, &resp)
		c.Close()
		if err != nil || resp.Error == nil || resp.Error.Code != tc.code {
			t.Errorf("%s: %+v %v, want code %d", tc.name, resp.Error, err, tc.code)
		}
	}
	if h.calls != 0 {
		t.Errorf("handler called %d times for malformed requests", h.calls)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	// A live agent keeps its socket.
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // now stale: the file stays, nobody answers
	ln2, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln2.Close()
	os.WriteFile(sock, nil, 0o600)
	if _, err := Listen(sock); err == nil {
		t.Error("Listen replaced a regular file")
	}
}

func TestCallUnreachable(t *testing.T) {
	_, err := Call(context.Background(), filepath.Join(t.TempDir(), "none.sock"), &Request{Op: OpStatus}, time.Second)
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Errorf("Call to a missing socket: %v, want UnreachableError", err)
	}
}
