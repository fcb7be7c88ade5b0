package admin

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// The operators' paths of the API (flockctl drops, flockctl doctor).
const (
	PathDrops  = "/v1/drops"
	PathDoctor = "/v1/doctor"
)

// Drops are the local pods' NetworkPolicy drop counters (GET /v1/drops):
// `flockctl drops`, most dropped first.
type Drops struct {
	// Enabled: NetworkPolicy is enforced (else nothing is ever dropped).
	Enabled bool `json:"enabled"`
	// Error says why the counters could not be read.
	Error string    `json:"error,omitempty"`
	Items []PodDrop `json:"items"`
}

// PodDrop is one pod's dropped packets, by direction.
type PodDrop struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Iface     string `json:"iface"`
	Ingress   uint64 `json:"ingress"`
	Egress    uint64 `json:"egress"`
}

// Doctor is what the agent's self-check found (GET /v1/doctor): `flockctl
// doctor` prints each problem and exits non-zero when there is one.
type Doctor struct {
	// Checks names every check that ran, in order.
	Checks   []string  `json:"checks"`
	Problems []Problem `json:"problems"`
}

// Problem is one thing wrong on the node.
type Problem struct {
	Check  string `json:"check"` // sysctl, routes, bird, nftables
	Detail string `json:"detail"`
}

// DropSource reads the drop counters (nil: NetworkPolicy off).
type DropSource interface {
	Drops(ctx context.Context) ([]PodDrop, error)
}

// DoctorSource runs the node's self-check.
type DoctorSource interface {
	Doctor(ctx context.Context) Doctor
}

// PathTrace answers GET /v1/trace?src=ADDR&dst=ADDR&port=N&proto=tcp:
// `flockctl trace`.
const PathTrace = "/v1/trace"

// Trace is how the NetworkPolicy last applied treats one packet: the
// sender's egress (when it is a pod of this node), then the receiver's
// ingress (likewise); it passes when both allow it.
type Trace struct {
	Src     netip.Addr `json:"src"`
	Dst     netip.Addr `json:"dst"`
	Proto   string     `json:"proto"`
	Port    uint16     `json:"port"`
	Allowed bool       `json:"allowed"`
	Egress  TraceStep  `json:"egress"`
	Ingress TraceStep  `json:"ingress"`
}

// TraceStep is one direction's decision.
type TraceStep struct {
	// Pod is the local pod (namespace/name) whose policy decides; empty
	// when the address is no pod of this node (its own node decides).
	Pod      string `json:"pod,omitempty"`
	Isolated bool   `json:"isolated"`
	Allowed  bool   `json:"allowed"`
	// Rule is the index of the allow-list rule that allows the packet
	// (-1: none, the default deny drops it), RuleText that rule, Chain the
	// allow-list chain in nftables.
	Rule     int    `json:"rule"`
	RuleText string `json:"ruleText,omitempty"`
	Chain    string `json:"chain,omitempty"`
}

// TraceSource traces a packet (nil: NetworkPolicy off).
type TraceSource interface {
	Trace(ctx context.Context, src, dst netip.Addr, proto string, port uint16) (Trace, error)
}

// ParseTraceQuery reads the trace parameters, naming a bad one.
func ParseTraceQuery(q url.Values) (src, dst netip.Addr, proto string, port uint16, err error) {
	if src, err = netip.ParseAddr(q.Get("src")); err != nil {
		return src, dst, "", 0, fmt.Errorf("src %q: %w", q.Get("src"), err)
	}
	if dst, err = netip.ParseAddr(q.Get("dst")); err != nil {
		return src, dst, "", 0, fmt.Errorf("dst %q: %w", q.Get("dst"), err)
	}
	proto = strings.ToLower(q.Get("proto"))
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return src, dst, "", 0, fmt.Errorf("proto %q: want tcp, udp or sctp", q.Get("proto"))
	}
	p, perr := strconv.ParseUint(q.Get("port"), 10, 16)
	if perr != nil || p == 0 {
		return src, dst, "", 0, fmt.Errorf("port %q: want 1 to 65535", q.Get("port"))
	}
	return src.Unmap(), dst.Unmap(), proto, uint16(p), nil
}
