package admin

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// FuzzHandler sends arbitrary HTTP requests (method, path with query,
// headers and body, parsed by net/http as the server would) to the admin
// API: it never panics, answers every request with JSON, 200 only to a GET
// of a known path, 404 to an unknown path and 405 to any other method, and
// changes nothing (the same GET answers the same before and after).
func FuzzHandler(f *testing.F) {
	f.Add("GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
	f.Add("POST /v1/allocations HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	f.Add("GET /v1/policy?x=%zz HTTP/1.1\r\nHost: x\r\n\r\n")
	f.Add("DELETE /v1/../v1/bgp HTTP/1.0\r\n\r\n")
	f.Add("GET //v1/anycast#frag HTTP/1.1\r\nHost: x\r\n\r\n")
	src := sources()
	h := Handler(src)
	known := []string{PathStatus, PathAllocations, PathBGP, PathAnycast, PathPolicy, PathServices}
	snapshot := func() string {
		var b strings.Builder
		for _, p := range known {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
			b.Write(rec.Body.Bytes())
		}
		return b.String()
	}
	before := snapshot()
	f.Fuzz(func(t *testing.T, raw string) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: answer is not JSON: %q", req.Method, req.URL, rec.Body.Bytes())
		}
		knownPath := slices.Contains(known, req.URL.Path)
		switch {
		case !knownPath && rec.Code != http.StatusNotFound:
			t.Fatalf("%s %s: %d, want 404", req.Method, req.URL, rec.Code)
		case knownPath && req.Method == http.MethodGet && rec.Code != http.StatusOK:
			t.Fatalf("GET %s: %d, want 200", req.URL, rec.Code)
		case knownPath && req.Method != http.MethodGet && rec.Code != http.StatusMethodNotAllowed:
			t.Fatalf("%s %s: %d, want 405", req.Method, req.URL, rec.Code)
		}
		if after := snapshot(); after != before {
			t.Fatalf("%s %s changed what the API serves", req.Method, req.URL)
		}
	})
}
