package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var (
	ip        = netip.MustParseAddr
	pool6     = netip.MustParsePrefix("2001:db8:42:1::/64")
	pool4     = netip.MustParsePrefix("10.42.1.0/24")
	peer6     = ip("2001:db8:42::1")
	peer4     = ip("192.0.2.1")
	any6      = ip("2001:db8:ffff::53")
	any4      = ip("192.0.2.153")
	applyTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

type fakeNode struct {
	node Node
	err  error
}

func (f fakeNode) Node(context.Context) (Node, error) { return f.node, f.err }

type fakeAllocations []Allocation

func (f fakeAllocations) Allocations() []Allocation { return append([]Allocation(nil), f...) }

type fakeBIRD struct {
	protos []Protocol
	err    error
}

func (f fakeBIRD) Protocols(context.Context) ([]Protocol, error) { return f.protos, f.err }

type fakeAnycast struct {
	st    AnycastState
	ready map[string]bool
}

func (f fakeAnycast) Anycast() AnycastState         { return f.st }
func (f fakeAnycast) PodReady(ns, name string) bool { return f.ready[ns+"/"+name] }
func (f fakePolicy) Policy() Policy                 { return Policy(f) }

type fakePolicy Policy

// node is a dual-stack node with two peers; pods web-1 and web-2 serve
// any6, web-2 also any4; only web-1 is Ready. BIRD has both sessions, one
// established, and a protocol of a peer no longer configured.
func sources() Sources {
	return Sources{
		Mode: "kubernetes",
		Node: fakeNode{node: Node{Name: "host001", Pool6: pool6, Pool4: pool4, ASN: 65101, Peers: []Peer{
			{Address: peer6, ASN: 65000, Protocol: "bgp6_2001_db8_42__1"},
			{Address: peer4, ASN: 65000, Protocol: "bgp4_192_0_2_1"},
		}}},
		Allocations: fakeAllocations{
			{Namespace: "default", Name: "web-2", ContainerID: "c2", IfName: "eth0", HostIface: "flock00000002",
				IPv6: ip("2001:db8:42:1::2"), IPv4: ip("10.42.1.3"), Anycast: []netip.Addr{any6, any4}},
			{Namespace: "default", Name: "web-1", ContainerID: "c1", IfName: "eth0", HostIface: "flock00000001",
				IPv6: ip("2001:db8:42:1::1"), IPv4: ip("10.42.1.2"), Anycast: []netip.Addr{any6}},
			{Namespace: "kube-system", Name: "dns", ContainerID: "c3", IfName: "eth0", HostIface: "flock00000003",
				IPv6: ip("2001:db8:42:1::3")},
		},
		BIRD: fakeBIRD{protos: []Protocol{
			{Name: "device1", Proto: "Device", State: "up", Since: "10:00:00"},
			{Name: "bgp6_2001_db8_42__1", Proto: "BGP", State: "up", Since: "10:00:01", Info: "Established", Established: true},
			{Name: "bgp4_192_0_2_1", Proto: "BGP", State: "start", Since: "10:00:02", Info: "Active        Socket: Connection refused"},
			{Name: "bgp4_192_0_2_9", Proto: "BGP", State: "down", Since: "10:00:03"},
		}},
		Anycast: fakeAnycast{
			st: AnycastState{
				Routes:    map[netip.Addr][]NextHop{any6: {{Via: ip("2001:db8:42:1::1"), Dev: "flock00000001"}}},
				Announced: []netip.Addr{any6},
				BGP:       true,
			},
			ready: map[string]bool{"default/web-1": true},
		},
		Policy: fakePolicy{
			Synced: true, LastApply: applyTime, LastChange: applyTime,
			Pods: []PodPolicy{
				{Namespace: "default", Name: "web-1", Iface: "flock00000001", Ingress: Verdict{Mode: AllowList, Chain: "ingress_0123456789abcdef"}, Egress: Verdict{Mode: Unrestricted}},
				{Namespace: "default", Name: "web-2", Iface: "flock00000002", Ingress: Verdict{Mode: DenyAll}, Egress: Verdict{Mode: Unrestricted}},
			},
		},
	}
}

// get serves one request and decodes a 200 answer into v.
func get(t *testing.T, h http.Handler, path string, v any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	reflect.ValueOf(v).Elem().SetZero() // a reused v keeps no field of the last answer
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

var cmpOpts = cmp.Options{cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})}

func TestStatus(t *testing.T) {
	var got Status
	get(t, Handler(sources()), PathStatus, &got)
	want := Status{
		Node: "host001", Mode: "kubernetes", Configured: true,
		Pools:       []Pool{{Family: "ipv6", CIDR: pool6, Allocated: 3}, {Family: "ipv4", CIDR: pool4, Allocated: 2}},
		Allocations: 3,
		BGP:         BGPSummary{Enabled: true, Sessions: 3, Established: 1},
		Anycast:     AnycastSummary{Enabled: true, Addresses: 2, Routed: 1, Announced: 1},
		Policy:      PolicySummary{Enabled: true, Synced: true, Restricted: 2, LastApply: applyTime},
	}
	if d := cmp.Diff(want, got, cmpOpts); d != "" {
		t.Errorf("status (-want +got):\n%s", d)
	}
}

// Without a NodeConfig, with BIRD down and everything optional off, the
// status still answers and says why.
func TestStatusDegraded(t *testing.T) {
	src := sources()
	src.Node = fakeNode{err: errors.New("no NodeConfig for this node")}
	src.BIRD = fakeBIRD{err: errors.New(`bird "show protocols": dial unix /run/flock/bird/bird.ctl: connect: no such file or directory`)}
	src.Anycast, src.Policy = nil, nil
	var got Status
	get(t, Handler(src), PathStatus, &got)
	want := Status{
		Mode: "kubernetes", ConfigError: "no NodeConfig for this node", Pools: []Pool{}, Allocations: 3,
		BGP: BGPSummary{Enabled: true, Error: `BIRD unreachable: bird "show protocols": dial unix /run/flock/bird/bird.ctl: connect: no such file or directory`},
	}
	if d := cmp.Diff(want, got, cmpOpts); d != "" {
		t.Errorf("status (-want +got):\n%s", d)
	}
}

func TestAllocations(t *testing.T) {
	var got Allocations
	get(t, Handler(sources()), PathAllocations, &got)
	var names []string
	for _, a := range got.Items {
		names = append(names, a.Namespace+"/"+a.Name)
	}
	if d := cmp.Diff([]string{"default/web-1", "default/web-2", "kube-system/dns"}, names); d != "" {
		t.Errorf("allocations sorted by namespace and name (-want +got):\n%s", d)
	}
	if d := cmp.Diff(sources().Allocations.(fakeAllocations)[0], got.Items[1], cmpOpts); d != "" {
		t.Errorf("web-2 (-want +got):\n%s", d)
	}

	src := sources()
	src.Allocations = fakeAllocations(nil)
	rec := httptest.NewRecorder()
	Handler(src).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, PathAllocations, nil))
	if !strings.Contains(rec.Body.String(), `"items": []`) {
		t.Errorf("no allocations: %s, want an empty list, not null", rec.Body)
	}
}

func TestBGP(t *testing.T) {
	var got BGP
	get(t, Handler(sources()), PathBGP, &got)
	want := BGP{Enabled: true, ASN: 65101, Sessions: []Session{
		{Peer: peer6, PeerASN: 65000, Protocol: "bgp6_2001_db8_42__1", State: "up", Since: "10:00:01", Info: "Established", Established: true},
		{Peer: peer4, PeerASN: 65000, Protocol: "bgp4_192_0_2_1", State: "start", Since: "10:00:02", Info: "Active        Socket: Connection refused"},
		{Protocol: "bgp4_192_0_2_9", State: "down", Since: "10:00:03"},
	}}
	if d := cmp.Diff(want, got, cmpOpts); d != "" {
		t.Errorf("bgp (-want +got):\n%s", d)
	}

	// A peer BIRD has no protocol for yet is missing; with BIRD
	// unreachable every peer's state is unknown and the error says why.
	src := sources()
	src.BIRD = fakeBIRD{protos: sources().BIRD.(fakeBIRD).protos[:2]}
	get(t, Handler(src), PathBGP, &got)
	if s := got.Sessions; len(s) != 2 || s[1].State != StateMissing || got.Error != "" {
		t.Errorf("peer without a protocol: %+v", got)
	}
	src.BIRD = fakeBIRD{err: errors.New("connection refused")}
	get(t, Handler(src), PathBGP, &got)
	if s := got.Sessions; len(s) != 2 || s[0].State != StateUnknown || s[1].State != StateUnknown || got.Error != "BIRD unreachable: connection refused" {
		t.Errorf("BIRD unreachable: %+v", got)
	}

	src.BIRD = nil
	get(t, Handler(src), PathBGP, &got)
	if d := cmp.Diff(BGP{Sessions: []Session{}}, got, cmpOpts); d != "" {
		t.Errorf("BGP off (-want +got):\n%s", d)
	}
}

func TestAnycast(t *testing.T) {
	var got Anycast
	get(t, Handler(sources()), PathAnycast, &got)
	want := Anycast{Enabled: true, BGP: true, Routes: []AnycastRoute{
		{Address: any4, Pods: []AnycastPod{{Namespace: "default", Name: "web-2"}}},
		{Address: any6, Routed: true, Announced: true,
			NextHops: []NextHop{{Via: ip("2001:db8:42:1::1"), Dev: "flock00000001"}},
			Pods:     []AnycastPod{{Namespace: "default", Name: "web-1", Ready: true}, {Namespace: "default", Name: "web-2"}}},
	}}
	if d := cmp.Diff(want, got, cmpOpts); d != "" {
		t.Errorf("anycast (-want +got):\n%s", d)
	}

	// A route of a pod deleted a moment ago shows until the reconciler
	// withdraws it.
	src := sources()
	src.Allocations = fakeAllocations(nil)
	get(t, Handler(src), PathAnycast, &got)
	if len(got.Routes) != 1 || got.Routes[0].Address != any6 || !got.Routes[0].Routed || len(got.Routes[0].Pods) != 0 {
		t.Errorf("route without an allocation: %+v", got.Routes)
	}

	src.Anycast = nil
	get(t, Handler(src), PathAnycast, &got)
	if d := cmp.Diff(Anycast{Routes: []AnycastRoute{}}, got, cmpOpts); d != "" {
		t.Errorf("anycast off (-want +got):\n%s", d)
	}
}

func TestPolicy(t *testing.T) {
	var got Policy
	get(t, Handler(sources()), PathPolicy, &got)
	pending := Verdict{Mode: Pending}
	want := Policy{Enabled: true, Synced: true, LastApply: applyTime, LastChange: applyTime, Pods: []PodPolicy{
		{Namespace: "default", Name: "web-1", Iface: "flock00000001", Ingress: Verdict{Mode: AllowList, Chain: "ingress_0123456789abcdef"}, Egress: Verdict{Mode: Unrestricted}},
		{Namespace: "default", Name: "web-2", Iface: "flock00000002", Ingress: Verdict{Mode: DenyAll}, Egress: Verdict{Mode: Unrestricted}},
		{Namespace: "kube-system", Name: "dns", Iface: "flock00000003", Ingress: pending, Egress: pending},
	}}
	if d := cmp.Diff(want, got, cmpOpts); d != "" {
		t.Errorf("policy (-want +got):\n%s", d)
	}

	src := sources()
	src.Policy = nil
	get(t, Handler(src), PathPolicy, &got)
	if d := cmp.Diff(Policy{Pods: []PodPolicy{}}, got, cmpOpts); d != "" {
		t.Errorf("policy off (-want +got):\n%s", d)
	}
}

func TestMethodAndPath(t *testing.T) {
	h := Handler(sources())
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, PathStatus, http.StatusMethodNotAllowed},
		{http.MethodDelete, PathAllocations, http.StatusMethodNotAllowed},
		{http.MethodPut, PathPolicy, http.StatusMethodNotAllowed},
		{http.MethodGet, "/v1/nope", http.StatusNotFound},
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodGet, PathStatus + "/", http.StatusNotFound},
		{http.MethodPost, "/v1/nope", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader("{}")))
		var e Error
		if rec.Code != tc.code || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %d %s, want %d with a JSON error", tc.method, tc.path, rec.Code, rec.Body, tc.code)
		}
		if tc.code == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != http.MethodGet {
			t.Errorf("%s %s: Allow %q, want GET", tc.method, tc.path, rec.Header().Get("Allow"))
		}
	}
}

// The client over a real unix socket: answers, errors of the API, and an
// agent that is not there.
func TestClientServe(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Serve(ctx, ln, Handler(sources()), slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	c := NewClient(sock, 5*time.Second)
	var st Status
	if err := c.Get(ctx, PathStatus, &st); err != nil || st.Node != "host001" {
		t.Fatalf("Get status = %+v, %v", st, err)
	}
	if _, err := c.Raw(ctx, "/v1/nope"); err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "no such path /v1/nope") {
		t.Errorf("unknown path: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}

	_, err = NewClient(filepath.Join(t.TempDir(), "none.sock"), time.Second).Raw(context.Background(), PathStatus)
	var re *ReachError
	if !errors.As(err, &re) || !strings.HasPrefix(err.Error(), "cannot reach the agent at ") || !strings.Contains(err.Error(), "none.sock: dial unix") {
		t.Errorf("no agent: %v", err)
	}
}

type fakeServices Services

func (f fakeServices) Services() Services { return Services(f) }

func TestServices(t *testing.T) {
	src := sources()
	item := ServiceAddress{Service: "demo/web", Address: ip("2001:db8:5::10"), Policy: "Local", Pool: "web",
		LocalEndpoints: 2, ReadyEndpoints: 3, Announced: true, Reason: "Local: 2 ready endpoints on this node"}
	src.Services = fakeServices{Synced: true, Items: []ServiceAddress{item}}
	var got Services
	get(t, Handler(src), PathServices, &got)
	if d := cmp.Diff(Services{Enabled: true, Synced: true, Items: []ServiceAddress{item}}, got, cmpOpts); d != "" {
		t.Errorf("services (-want +got):\n%s", d)
	}
	src.Services = nil
	get(t, Handler(src), PathServices, &got)
	if d := cmp.Diff(Services{Items: []ServiceAddress{}}, got, cmpOpts); d != "" {
		t.Errorf("services off (-want +got):\n%s", d)
	}
}
