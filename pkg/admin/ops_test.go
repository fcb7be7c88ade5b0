package admin

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseTraceQuery(t *testing.T) {
	src, dst, proto, port, err := ParseTraceQuery(url.Values{"src": {"::ffff:10.0.0.1"}, "dst": {"10.0.0.2"}, "proto": {"UDP"}, "port": {"53"}})
	if err != nil || src.String() != "10.0.0.1" || dst.String() != "10.0.0.2" || proto != "udp" || port != 53 {
		t.Errorf("ParseTraceQuery = %v %v %q %d %v", src, dst, proto, port, err)
	}
	for field, q := range map[string]url.Values{
		"src":   {"src": {"web"}, "dst": {"10.0.0.2"}, "proto": {"tcp"}, "port": {"1"}},
		"dst":   {"src": {"10.0.0.1"}, "proto": {"tcp"}, "port": {"1"}},
		"proto": {"src": {"10.0.0.1"}, "dst": {"10.0.0.2"}, "proto": {"icmp"}, "port": {"1"}},
		"port":  {"src": {"10.0.0.1"}, "dst": {"10.0.0.2"}, "proto": {"tcp"}, "port": {"65536"}},
	} {
		if _, _, _, _, err := ParseTraceQuery(q); err == nil || !strings.HasPrefix(err.Error(), field+" ") {
			t.Errorf("bad %s: %v, want an error naming it", field, err)
		}
	}
}

func FuzzParseTraceQuery(f *testing.F) {
	f.Add("src=2001:db8::1&dst=10.0.0.1&proto=tcp&port=80")
	f.Add("src=%00&port=-1")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		src, dst, proto, port, err := ParseTraceQuery(q)
		if err != nil {
			return
		}
		if !src.IsValid() || !dst.IsValid() || port == 0 || (proto != "tcp" && proto != "udp" && proto != "sctp") {
			t.Fatalf("accepted %q as %v %v %q %d", raw, src, dst, proto, port)
		}
	})
}
