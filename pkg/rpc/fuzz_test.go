package rpc

import (
	"bytes"
	"testing"
)

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
