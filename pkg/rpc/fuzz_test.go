package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"testing"
)

type handlerFunc func(context.Context, *Request) *Response

func (f handlerFunc) Handle(ctx context.Context, r *Request) *Response { return f(ctx, r) }

// FuzzDecodeRequest feeds arbitrary bytes to the agent's request decoding
// and validation: it must never panic, and whatever passes validation must
// be well-formed.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"op":"ADD","containerID":"abc","ifName":"eth0","netns":"/run/netns/x","args":"K8S_POD_NAMESPACE=a;K8S_POD_NAME=b"}` + "\n"))
	f.Add([]byte(`{"op":"GC","validAttachments":[{"containerID":"a","ifName":"eth0"}]}`))
	f.Add([]byte(`{"op":"CHECK","containerID":"a","ifName":"eth0","netns":"/x","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.2/32"}]}}`))
	f.Add([]byte(`{"op":"DEL"}`))
	f.Add([]byte("\x00\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req Request
		if err := ReadMessage(bytes.NewReader(b), MaxMessageSize, &req); err != nil {
			return
		}
		if err := req.Validate(); err != nil {
			return
		}
		switch req.Op {
		case OpAdd, OpDel, OpCheck:
			if ValidateContainerID(req.ContainerID) != nil || ValidateIfName(req.IfName) != nil {
				t.Fatalf("validated request with bad ids: %+v", req)
			}
		}
	})
}

// FuzzParseArgs checks CNI_ARGS parsing never panics and only accepts pod
// names and namespaces that are safe in paths and logs.
func FuzzParseArgs(f *testing.F) {
	f.Add("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=x")
	f.Add("K8S_POD_NAME=a/../b")
	f.Add(";;=;")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseArgs(s)
		if err != nil {
			return
		}
		for _, v := range []string{a.Namespace, a.Name} {
			if bytes.ContainsAny([]byte(v), "/\n\x00 ") {
				t.Fatalf("unsafe name accepted: %q", v)
			}
		}
	})
}

// FuzzServeConn drives the agent's side of one connection with arbitrary
// bytes, as a hostile local client could: the server never panics, answers
// with at most one well-formed reply line (an error with a CNI code for
// anything it rejects), and hands the handler only requests that passed
// validation.
func FuzzServeConn(f *testing.F) {
	f.Add([]byte(`{"op":"ADD","containerID":"abc","ifName":"eth0","netns":"/run/netns/x","args":"K8S_POD_NAMESPACE=a;K8S_POD_NAME=b"}` + "\n"))
	f.Add([]byte(`{"op":"STATUS"}` + "\n" + `{"op":"DEL"}` + "\n"))
	f.Add([]byte(`{"op":"ADD","containerID":"../../etc","ifName":"eth0/x"}`))
	f.Add([]byte("{\"op\":\"GC\",\"validAttachments\":[{}]}\n"))
	f.Add([]byte("not json\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		client, server := net.Pipe()
		h := handlerFunc(func(_ context.Context, req *Request) *Response {
			if err := req.Validate(); err != nil {
				t.Errorf("handler got an invalid request: %v: %+v", err, req)
			}
			return &Response{}
		})
		// Every request is a line: one without its newline would only wait
		// for the read timeout.
		if !bytes.Contains(b, []byte("\n")) {
			b = append(b, '\n')
		}
		done := make(chan struct{})
		go func() {
			serveConn(context.Background(), server, h, slog.New(slog.DiscardHandler))
			close(done)
		}()
		// The write ends when the server has read its line and closed.
		go client.Write(b)
		out, _ := io.ReadAll(client)
		<-done
		if len(out) == 0 {
			return
		}
		lines := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
		if len(lines) != 1 || !bytes.HasSuffix(out, []byte("\n")) {
			t.Fatalf("reply is not one line: %q", out)
		}
		var resp Response
		if err := json.Unmarshal(lines[0], &resp); err != nil {
			t.Fatalf("reply is not JSON: %q: %v", out, err)
		}
		if resp.Error != nil && resp.Error.Code == 0 {
			t.Fatalf("error reply without a CNI code: %q", out)
		}
	})
}
