package admin

import "context"

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
