// Package rpc is the wire protocol between the flock CNI plugin and the node
// agent: one unix-socket connection per CNI call, one newline-terminated JSON
// request, one newline-terminated JSON response.
//
// It is imported by the CNI binary, so it depends on nothing of flock's and
// on no library beyond the CNI types.
package rpc

import (
	"fmt"
	"regexp"
	"strings"

	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// DefaultSocket is where the agent listens unless the network config says otherwise.
const DefaultSocket = "/run/flock/agent.sock"

// MaxMessageSize bounds one request or response line. A GC request with ten
// thousand attachments stays well below it.
const MaxMessageSize = 4 << 20

// Op is a CNI verb.
type Op string

// The CNI verbs the agent serves. VERSION is answered by the plugin itself.
const (
	OpAdd    Op = "ADD"
	OpDel    Op = "DEL"
	OpCheck  Op = "CHECK"
	OpStatus Op = "STATUS"
	OpGC     Op = "GC"
)

// Request is one CNI call, forwarded by the plugin.
type Request struct {
	Op          Op     `json:"op"`
	ContainerID string `json:"containerID,omitempty"`
	// Netns is the path of the pod's network namespace (CNI_NETNS).
	Netns  string `json:"netns,omitempty"`
	IfName string `json:"ifName,omitempty"`
	// Args is CNI_ARGS as the runtime passed it (K8S_POD_NAMESPACE=…;…).
	Args string `json:"args,omitempty"`
	// Network is the network config's name.
	Network string `json:"network,omitempty"`
	// MTU of the pod's interface; 0 means the default (1500).
	MTU int `json:"mtu,omitempty"`
	// PrevResult is the result CHECK verifies, converted to the current version.
	PrevResult *types100.Result `json:"prevResult,omitempty"`
	// ValidAttachments is GC's list of attachments to keep.
	ValidAttachments []Attachment `json:"validAttachments,omitempty"`
}

// Attachment names one container interface.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

// Response is the agent's answer: a result (ADD), or an error, or neither.
type Response struct {
	Result *types100.Result `json:"result,omitempty"`
	Error  *Error           `json:"error,omitempty"`
}

// Error is an agent error with a CNI error code (types.Err* or 100+ for
// flock's own), so the plugin can hand it to the runtime unchanged.
type Error struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details,omitempty"`
}

func (e *Error) Error() string {
	if e.Details == "" {
		return e.Msg
	}
	return e.Msg + ": " + e.Details
}

// Flock's own error codes (CNI reserves 100 and above for plugins).
const (
	// ErrNoNodeConfig: the agent has no usable configuration for its node.
	ErrNoNodeConfig uint = 100
	// ErrAllocate: no address could be allocated for the pod.
	ErrAllocate uint = 101
	// ErrDatapath: the kernel refused part of the pod's data path.
	ErrDatapath uint = 102
	// ErrCheck: CHECK found the pod's networking differs from what was set up.
	ErrCheck uint = 103
)

var containerIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]*$`)

// Validate checks a request before the agent acts on it; every error names
// the field and the value.
func (r *Request) Validate() error {
	switch r.Op {
	case OpAdd, OpDel, OpCheck:
		if err := ValidateContainerID(r.ContainerID); err != nil {
			return err
		}
		if err := ValidateIfName(r.IfName); err != nil {
			return err
		}
		if r.Op != OpDel && r.Netns == "" {
			return fmt.Errorf("netns is empty for %s", r.Op)
		}
		if r.Netns != "" && (!strings.HasPrefix(r.Netns, "/") || strings.ContainsAny(r.Netns, "\x00\n")) {
			return fmt.Errorf("netns %q is not an absolute path", r.Netns)
		}
		if _, err := ParseArgs(r.Args); err != nil {
			return err
		}
	case OpStatus:
	case OpGC:
		for i, a := range r.ValidAttachments {
			if err := ValidateContainerID(a.ContainerID); err != nil {
				return fmt.Errorf("validAttachments[%d]: %w", i, err)
			}
			if err := ValidateIfName(a.IfName); err != nil {
				return fmt.Errorf("validAttachments[%d]: %w", i, err)
			}
		}
	default:
		return fmt.Errorf("op %q is not one of ADD, DEL, CHECK, STATUS, GC", r.Op)
	}
	if r.MTU != 0 && (r.MTU < 1280 || r.MTU > 65535) {
		return fmt.Errorf("mtu %d is outside 1280..65535", r.MTU)
	}
	if r.Op == OpCheck && r.PrevResult == nil {
		return fmt.Errorf("prevResult is missing for CHECK")
	}
	return nil
}

// ValidateContainerID applies the CNI spec's rule: alphanumerics, '_', '.', '-'.
func ValidateContainerID(id string) error {
	if len(id) > 1024 || !containerIDRe.MatchString(id) {
		return fmt.Errorf("containerID %q is not alphanumeric with '_', '.', '-'", id)
	}
	return nil
}

// ValidateIfName applies the kernel's rules for an interface name.
func ValidateIfName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." ||
		strings.ContainsAny(name, "/: \t\n\x00") {
		return fmt.Errorf("ifName %q is not a valid interface name", name)
	}
	return nil
}
