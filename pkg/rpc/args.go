package rpc

import (
	"fmt"
	"regexp"
	"strings"
)

// Kubernetes' name rules, so a pod name can never smuggle a path or a
// newline into a file name, a log line or an Event.
var (
	dnsLabelRe     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomainRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// PodArgs are the CNI_ARGS keys that kubelet and container runtimes pass.
type PodArgs struct {
	Namespace     string // K8S_POD_NAMESPACE
	Name          string // K8S_POD_NAME
	UID           string // K8S_POD_UID
	InfraID       string // K8S_POD_INFRA_CONTAINER_ID
	IgnoreUnknown bool   // IgnoreUnknown
}

// ParseArgs parses CNI_ARGS ("K=V;K=V"). Unknown keys are ignored, as the
// runtime may pass keys meant for other plugins in a chain; a malformed pair
// is an error that names it.
func ParseArgs(s string) (PodArgs, error) {
	var a PodArgs
	if s == "" {
		return a, nil
	}
	for _, kv := range strings.Split(s, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return PodArgs{}, fmt.Errorf("CNI_ARGS entry %q is not KEY=VALUE", kv)
		}
		switch k {
		case "K8S_POD_NAMESPACE":
			if !dnsLabelRe.MatchString(v) || len(v) > 63 {
				return PodArgs{}, fmt.Errorf("CNI_ARGS K8S_POD_NAMESPACE %q is not a DNS-1123 label", v)
			}
			a.Namespace = v
		case "K8S_POD_NAME":
			if !dnsSubdomainRe.MatchString(v) || len(v) > 253 {
				return PodArgs{}, fmt.Errorf("CNI_ARGS K8S_POD_NAME %q is not a DNS-1123 subdomain", v)
			}
			a.Name = v
		case "K8S_POD_UID":
			a.UID = v
		case "K8S_POD_INFRA_CONTAINER_ID":
			a.InfraID = v
		case "IgnoreUnknown":
			a.IgnoreUnknown = v == "1" || strings.EqualFold(v, "true")
		}
	}
	return a, nil
}
