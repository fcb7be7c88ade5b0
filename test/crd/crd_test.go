package crd

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/model"
)

// spec is a valid spec with every field set (SPEC.md's example); each case
// changes one thing.
func spec() map[string]any {
	return map[string]any{
		"cidr6":    "2001:db8:42:1::/64",
		"cidr4":    "10.42.1.0/24",
		"defaults": map[string]any{"ipv6": true, "ipv4": true},
		"bgp": map[string]any{
			"asn": int64(65101),
			"peers": []any{
				map[string]any{"address": "2001:db8:42::1", "asn": int64(65000)},
				map[string]any{"address": "192.0.2.1", "asn": int64(65000)},
			},
		},
		"anycast": map[string]any{"allowedCIDRs": []any{"2001:db8:ffff::/48", "192.0.2.128/25"}},
	}
}

func set(path string, v any) func(map[string]any) {
	return func(s map[string]any) {
		keys := strings.Split(path, ".")
		m := s
		for _, k := range keys[:len(keys)-1] {
			m = m[k].(map[string]any)
		}
		m[keys[len(keys)-1]] = v
	}
}

func del(path string) func(map[string]any) {
	return func(s map[string]any) {
		keys := strings.Split(path, ".")
		m := s
		for _, k := range keys[:len(keys)-1] {
			m = m[k].(map[string]any)
		}
		delete(m, keys[len(keys)-1])
	}
}

func peers(n int) []any {
	ps := make([]any, n)
	for i := range ps {
		ps[i] = map[string]any{"address": fmt.Sprintf("2001:db8::%x", i+1), "asn": int64(65000)}
	}
	return ps
}

func cidrs(n int) []any {
	cs := make([]any, n)
	for i := range cs {
		cs[i] = fmt.Sprintf("2001:db8:%x::/48", i+1)
	}
	return cs
}

func peer(address string, asn int64) []any {
	return []any{map[string]any{"address": address, "asn": asn}}
}

// peerWith is one peer with extra fields set (a nil value deletes the key).
func peerWith(kv ...any) []any {
	p := map[string]any{"address": "192.0.2.1", "asn": int64(65000)}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(p, kv[i].(string))
		} else {
			p[kv[i].(string)] = kv[i+1]
		}
	}
	return []any{p}
}

func strs(n int, format string) []any {
	s := make([]any, n)
	for i := range s {
		s[i] = fmt.Sprintf(format, i)
	}
	return s
}

func nodeConfig(name string, s map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.SchemeGroupVersion.String(),
		"kind":       v1alpha1.NodeConfigKind,
		"metadata":   map[string]any{"name": name},
		"spec":       s,
	}}
}

func client(t *testing.T) dynamic.ResourceInterface {
	t.Helper()
	c, err := dynamic.NewForConfig(controlPlane(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c.Resource(v1alpha1.NodeConfigGVR)
}

func TestValidNodeConfigs(t *testing.T) {
	nc := client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(map[string]any)
	}{
		{"full", func(map[string]any) {}},
		{"ipv6-only", del("cidr4")},
		{"ipv4-only", del("cidr6")},
		{"pools-only", func(s map[string]any) { delete(s, "defaults"); delete(s, "bgp"); delete(s, "anycast") }},
		{"longest-pools", func(s map[string]any) { s["cidr6"] = "2001:db8:42:1::100/120"; s["cidr4"] = "10.42.1.4/30" }},
		{"upper-case-pool", set("cidr6", "2001:DB8:42:1::/64")},
		{"ula-and-cgnat", func(s map[string]any) { s["cidr6"] = "fd00:42::/48"; s["cidr4"] = "100.64.0.0/10" }},
		{"defaults-partial", set("defaults", map[string]any{"ipv4": false})},
		{"defaults-empty", set("defaults", map[string]any{})},
		{"asn-1", set("bgp.asn", int64(1))},
		{"asn-max", set("bgp.asn", int64(4294967295))},
		{"peer-asn-4byte", set("bgp.peers", peer("2001:db8::1", 4200000000))},
		{"no-peers", del("bgp.peers")},
		{"max-peers", set("bgp.peers", peers(v1alpha1.MaxBGPPeers))},
		{"peer-ula", set("bgp.peers", peer("fd00::1", 65000))},
		{"peer-rfc1918", set("bgp.peers", peer("10.0.0.1", 65000))},
		{"anycast-any", set("anycast.allowedCIDRs", []any{"::/0", "0.0.0.0/0"})},
		{"anycast-host", set("anycast.allowedCIDRs", []any{"2001:db8::1/128", "192.0.2.1/32"})},
		{"anycast-max", set("anycast.allowedCIDRs", cidrs(v1alpha1.MaxAllowedCIDRs))},
		{"anycast-empty", set("anycast", map[string]any{})},
		{"router-id", set("bgp.routerID", "192.0.2.11")},
		{"peer-every-field", set("bgp.peers", peerWith("sourceAddress", "192.0.2.11", "bfd", true, "holdTime", int64(9),
			"gracefulRestart", false, "restartTime", int64(60), "multihop", int64(2),
			"passwordSecretRef", map[string]any{"name": "bgp.router-1", "key": "md5_key"},
			"communities", []any{"65000:1", "0:65535"}, "largeCommunities", []any{"4294967295:0:4294967295"}))},
		{"hold-time-0", set("bgp.peers", peerWith("holdTime", int64(0)))},
		{"hold-time-3", set("bgp.peers", peerWith("holdTime", int64(v1alpha1.MinHoldTime)))},
		{"hold-time-max", set("bgp.peers", peerWith("holdTime", int64(v1alpha1.MaxHoldTime)))},
		{"restart-time-max", set("bgp.peers", peerWith("restartTime", int64(v1alpha1.MaxRestartTime)))},
		{"multihop-max", set("bgp.peers", peerWith("multihop", int64(v1alpha1.MaxMultihop)))},
		{"source-address-v6", set("bgp.peers", peerWith("address", "2001:db8::1", "sourceAddress", "2001:db8::2"))},
		{"communities-max", set("bgp.peers", peerWith("communities", strs(v1alpha1.MaxCommunities, "65535:%d")))},
		{"large-communities-max", set("bgp.peers", peerWith("largeCommunities", strs(v1alpha1.MaxCommunities, "1:2:%d")))},
		{"secret-name-max", set("bgp.peers", peerWith("passwordSecretRef", map[string]any{
			"name": strings.Repeat("a", v1alpha1.MaxSecretNameLength), "key": strings.Repeat("k", v1alpha1.MaxSecretKeyLength)}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spec()
			tc.change(s)
			obj := nodeConfig("valid-"+tc.name, s)
			if _, err := nc.Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Fatalf("API server rejected a valid NodeConfig: %v", err)
			}
			// What the schema accepts, the agent must accept too.
			if _, err := model.NodeFromConfig(typed(t, obj)); err != nil {
				t.Errorf("the schema accepts it, but model.NodeFromConfig does not: %v", err)
			}
		})
	}
}

// modelCheck says what model.NodeFromConfig, which validates again in the
// agent, must make of a NodeConfig the schema rejects.
type modelCheck int

const (
	// rejects: the agent must reject it too.
	rejects modelCheck = iota
	// unrepresentable: the Go type cannot hold the value (an explicit
	// empty string, an integer outside uint32), so the agent never sees it.
	unrepresentable
)

func TestInvalidNodeConfigs(t *testing.T) {
	nc := client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(map[string]any)
		field  string // the path the API server's error names
		msg    string // and a piece of its message
		model  modelCheck
	}{
		{"no-pools", func(s map[string]any) { delete(s, "cidr6"); delete(s, "cidr4") }, "spec", "at least one of spec.cidr6 and spec.cidr4", rejects},
		{"cidr6-empty", set("cidr6", ""), "spec.cidr6", "must be a CIDR", unrepresentable},
		{"cidr6-garbage", set("cidr6", "pool"), "spec.cidr6", "must be a CIDR", rejects},
		{"cidr6-no-length", set("cidr6", "2001:db8:42:1::"), "spec.cidr6", "must be a CIDR", rejects},
		{"cidr6-ipv4", set("cidr6", "10.42.0.0/16"), "spec.cidr6", "must be an IPv6 CIDR", rejects},
		{"cidr6-v4-mapped", set("cidr6", "::ffff:10.42.0.0/112"), "spec.cidr6", "must be a CIDR", rejects},
		{"cidr6-host-bits", set("cidr6", "2001:db8:42:1::1/64"), "spec.cidr6", "no host bits", rejects},
		{"cidr6-too-long-prefix", set("cidr6", "2001:db8:42:1::/121"), "spec.cidr6", "at most /120", rejects},
		{"cidr6-link-local", set("cidr6", "fe80::/64"), "spec.cidr6", "unicast range", rejects},
		{"cidr6-multicast", set("cidr6", "ff02::/64"), "spec.cidr6", "unicast range", rejects},
		{"cidr6-unspecified", set("cidr6", "::/64"), "spec.cidr6", "unicast range", rejects},
		{"cidr6-too-long", set("cidr6", strings.Repeat("a", 50)), "spec.cidr6", "may not be more than 49", rejects},
		{"cidr6-number", set("cidr6", int64(64)), "spec.cidr6", "must be of type string", rejects},
		{"cidr4-garbage", set("cidr4", "10.42.1/24"), "spec.cidr4", "must be a CIDR", rejects},
		{"cidr4-leading-zero", set("cidr4", "010.42.1.0/24"), "spec.cidr4", "must be a CIDR", rejects},
		{"cidr4-ipv6", set("cidr4", "2001:db8:42:1::/64"), "spec.cidr4", "must be an IPv4 CIDR", rejects},
		{"cidr4-host-bits", set("cidr4", "10.42.1.1/24"), "spec.cidr4", "no host bits", rejects},
		{"cidr4-31", set("cidr4", "10.42.1.0/31"), "spec.cidr4", "at most /30", rejects},
		{"cidr4-32", set("cidr4", "10.42.1.1/32"), "spec.cidr4", "at most /30", rejects},
		{"cidr4-loopback", set("cidr4", "127.0.0.0/8"), "spec.cidr4", "unicast range", rejects},
		{"cidr4-link-local", set("cidr4", "169.254.0.0/16"), "spec.cidr4", "unicast range", rejects},
		{"cidr4-multicast", set("cidr4", "224.0.0.0/24"), "spec.cidr4", "unicast range", rejects},
		{"cidr4-unspecified", set("cidr4", "0.0.0.0/8"), "spec.cidr4", "unicast range", rejects},
		{"defaults-string", set("defaults.ipv6", "yes"), "spec.defaults.ipv6", "must be of type boolean", rejects},
		{"asn-missing", del("bgp.asn"), "spec.bgp.asn", "Required value", rejects},
		{"asn-0", set("bgp.asn", int64(0)), "spec.bgp.asn", "greater than or equal to 1", rejects},
		{"asn-negative", set("bgp.asn", int64(-1)), "spec.bgp.asn", "greater than or equal to 1", unrepresentable},
		{"asn-2^32", set("bgp.asn", int64(4294967296)), "spec.bgp.asn", "less than or equal to 4294967295", unrepresentable},
		{"asn-as-trans", set("bgp.asn", int64(23456)), "spec.bgp.asn", "AS_TRANS", rejects},
		{"asn-string", set("bgp.asn", "65101"), "spec.bgp.asn", "must be of type integer", rejects},
		{"peer-asn-0", set("bgp.peers", peer("2001:db8::1", 0)), "spec.bgp.peers[0].asn", "greater than or equal to 1", rejects},
		{"peer-asn-as-trans", set("bgp.peers", peer("2001:db8::1", 23456)), "spec.bgp.peers[0].asn", "AS_TRANS", rejects},
		{"peer-asn-2^32", set("bgp.peers", peer("2001:db8::1", 4294967296)), "spec.bgp.peers[0].asn", "less than or equal to 4294967295", unrepresentable},
		{"peer-address-missing", set("bgp.peers", []any{map[string]any{"asn": int64(65000)}}), "spec.bgp.peers[0].address", "Required value", rejects},
		{"peer-address-garbage", set("bgp.peers", peer("router", 65000)), "spec.bgp.peers[0].address", "must be an IP address", rejects},
		{"peer-address-gateway-misspelt", set("bgp.peers", peer("default-gateway", 65000)), "spec.bgp.peers[0].address", "or default-gateway-ipv6 or default-gateway-ipv4", rejects},
		{"source-address-gateway-family", set("bgp.peers", peerWith("address", "default-gateway-ipv4", "sourceAddress", "2001:db8::2")), "spec.bgp.peers[0]", "of the family of the default gateway", rejects},
		{"peer-address-cidr", set("bgp.peers", peer("2001:db8::1/64", 65000)), "spec.bgp.peers[0].address", "must be an IP address", rejects},
		{"peer-address-zone", set("bgp.peers", peer("fe80::1%eth0", 65000)), "spec.bgp.peers[0].address", "must be an IP address", rejects},
		{"peer-address-v4-mapped", set("bgp.peers", peer("::ffff:192.0.2.1", 65000)), "spec.bgp.peers[0].address", "must be an IP address", rejects},
		{"peer-address-link-local6", set("bgp.peers", peer("fe80::1", 65000)), "spec.bgp.peers[0].address", "unicast address", rejects},
		{"peer-address-link-local4", set("bgp.peers", peer("169.254.0.1", 65000)), "spec.bgp.peers[0].address", "unicast address", rejects},
		{"peer-address-unspecified6", set("bgp.peers", peer("::", 65000)), "spec.bgp.peers[0].address", "unicast address", rejects},
		{"peer-address-unspecified4", set("bgp.peers", peer("0.0.0.0", 65000)), "spec.bgp.peers[0].address", "unicast address", rejects},
		{"peer-address-loopback", set("bgp.peers", peer("127.0.0.1", 65000)), "spec.bgp.peers[0].address", "unicast address", rejects},
		{"peer-address-multicast", set("bgp.peers", peer("ff02::2", 65000)), "spec.bgp.peers[0].address", "unicast address", rejects},
		{"peer-address-upper-case", set("bgp.peers", peer("2001:DB8::1", 65000)), "spec.bgp.peers[0].address", "canonical form", rejects},
		{"peer-address-zeros", set("bgp.peers", peer("2001:db8:0::1", 65000)), "spec.bgp.peers[0].address", "canonical form", rejects},
		{"peer-address-too-long", set("bgp.peers", peer(strings.Repeat("1", 46), 65000)), "spec.bgp.peers[0].address", "may not be more than 45", rejects},
		{"peers-duplicate", set("bgp.peers", append(peer("2001:db8::1", 65000), peer("2001:db8::1", 65001)...)), "spec.bgp.peers[1]", "Duplicate value", rejects},
		{"peers-too-many", set("bgp.peers", peers(v1alpha1.MaxBGPPeers+1)), "spec.bgp.peers", "must have at most 32 items", rejects},
		{"anycast-garbage", set("anycast.allowedCIDRs", []any{"2001:db8:ffff::/48", "anywhere"}), "spec.anycast.allowedCIDRs[1]", "must be CIDRs", rejects},
		{"anycast-address", set("anycast.allowedCIDRs", []any{"192.0.2.1"}), "spec.anycast.allowedCIDRs[0]", "must be CIDRs", rejects},
		{"anycast-host-bits", set("anycast.allowedCIDRs", []any{"192.0.2.1/24"}), "spec.anycast.allowedCIDRs[0]", "no host bits", rejects},
		{"anycast-duplicate", set("anycast.allowedCIDRs", []any{"192.0.2.0/24", "192.0.2.0/24"}), "spec.anycast.allowedCIDRs[1]", "Duplicate value", rejects},
		{"anycast-too-many", set("anycast.allowedCIDRs", cidrs(v1alpha1.MaxAllowedCIDRs+1)), "spec.anycast.allowedCIDRs", "must have at most 64 items", rejects},
		{"anycast-too-long", set("anycast.allowedCIDRs", []any{strings.Repeat("1", 50)}), "spec.anycast.allowedCIDRs[0]", "may not be more than 49", rejects},
		{"router-id-ipv6", set("bgp.routerID", "2001:db8::1"), "spec.bgp.routerID", "must be an IPv4 address", rejects},
		{"router-id-garbage", set("bgp.routerID", "router"), "spec.bgp.routerID", "must be an IPv4 address", rejects},
		{"router-id-leading-zero", set("bgp.routerID", "192.0.2.011"), "spec.bgp.routerID", "must be an IPv4 address", rejects},
		{"router-id-zero", set("bgp.routerID", "0.0.0.0"), "spec.bgp.routerID", "must not be 0.0.0.0", rejects},
		{"router-id-too-long", set("bgp.routerID", "192.0000.002.011"), "spec.bgp.routerID", "may not be more than 15", rejects},
		{"source-address-garbage", set("bgp.peers", peerWith("sourceAddress", "me")), "spec.bgp.peers[0].sourceAddress", "must be an IP address", rejects},
		{"source-address-link-local", set("bgp.peers", peerWith("address", "2001:db8::1", "sourceAddress", "fe80::2")), "spec.bgp.peers[0].sourceAddress", "unicast address", rejects},
		{"source-address-zeros", set("bgp.peers", peerWith("address", "2001:db8::1", "sourceAddress", "2001:db8:0::2")), "spec.bgp.peers[0].sourceAddress", "canonical form", rejects},
		{"source-address-family", set("bgp.peers", peerWith("sourceAddress", "2001:db8::2")), "spec.bgp.peers[0]", "of the family of address", rejects},
		{"bfd-string", set("bgp.peers", peerWith("bfd", "on")), "spec.bgp.peers[0].bfd", "must be of type boolean", unrepresentable},
		{"hold-time-1", set("bgp.peers", peerWith("holdTime", int64(1))), "spec.bgp.peers[0].holdTime", "0 (the default) or 3 to 65535", rejects},
		{"hold-time-2", set("bgp.peers", peerWith("holdTime", int64(2))), "spec.bgp.peers[0].holdTime", "0 (the default) or 3 to 65535", rejects},
		{"hold-time-65536", set("bgp.peers", peerWith("holdTime", int64(65536))), "spec.bgp.peers[0].holdTime", "less than or equal to 65535", rejects},
		{"hold-time-negative", set("bgp.peers", peerWith("holdTime", int64(-3))), "spec.bgp.peers[0].holdTime", "greater than or equal to 0", rejects},
		{"graceful-restart-string", set("bgp.peers", peerWith("gracefulRestart", "yes")), "spec.bgp.peers[0].gracefulRestart", "must be of type boolean", unrepresentable},
		{"restart-time-4096", set("bgp.peers", peerWith("restartTime", int64(4096))), "spec.bgp.peers[0].restartTime", "less than or equal to 4095", rejects},
		{"restart-time-negative", set("bgp.peers", peerWith("restartTime", int64(-1))), "spec.bgp.peers[0].restartTime", "greater than or equal to 0", rejects},
		{"multihop-256", set("bgp.peers", peerWith("multihop", int64(256))), "spec.bgp.peers[0].multihop", "less than or equal to 255", rejects},
		{"multihop-negative", set("bgp.peers", peerWith("multihop", int64(-1))), "spec.bgp.peers[0].multihop", "greater than or equal to 0", rejects},
		{"secret-name-missing", set("bgp.peers", peerWith("passwordSecretRef", map[string]any{"key": "k"})), "spec.bgp.peers[0].passwordSecretRef.name", "Required value", rejects},
		{"secret-key-missing", set("bgp.peers", peerWith("passwordSecretRef", map[string]any{"name": "bgp"})), "spec.bgp.peers[0].passwordSecretRef.key", "Required value", rejects},
		{"secret-name-upper", set("bgp.peers", peerWith("passwordSecretRef", map[string]any{"name": "BGP", "key": "k"})), "spec.bgp.peers[0].passwordSecretRef.name", "should match", rejects},
		{"secret-name-namespaced", set("bgp.peers", peerWith("passwordSecretRef", map[string]any{"name": "kube-system/bgp", "key": "k"})), "spec.bgp.peers[0].passwordSecretRef.name", "should match", rejects},
		{"secret-namespace-upper", set("bgp.peers", peerWith("passwordSecretRef", map[string]any{"namespace": "Kube_System", "name": "bgp", "key": "k"})), "spec.bgp.peers[0].passwordSecretRef.namespace", "should match", rejects},
		{"secret-namespace-too-long", set("bgp.peers", peerWith("passwordSecretRef", map[string]any{"namespace": strings.Repeat("a", 64), "name": "bgp", "key": "k"})), "spec.bgp.peers[0].passwordSecretRef.namespace", "may not be more than 63", rejects},
		{"secret-key-slash", set("bgp.peers", peerWith("passwordSecretRef", map[string]any{"name": "bgp", "key": "a/b"})), "spec.bgp.peers[0].passwordSecretRef.key", "should match", rejects},
		{"secret-name-too-long", set("bgp.peers", peerWith("passwordSecretRef", map[string]any{"name": strings.Repeat("a", 254), "key": "k"})), "spec.bgp.peers[0].passwordSecretRef.name", "may not be more than 253", rejects},
		{"community-asn-big", set("bgp.peers", peerWith("communities", []any{"65536:1"})), "spec.bgp.peers[0].communities[0]", "both at most 65535", rejects},
		{"community-value-big", set("bgp.peers", peerWith("communities", []any{"1:99999"})), "spec.bgp.peers[0].communities[0]", "both at most 65535", rejects},
		{"community-three-parts", set("bgp.peers", peerWith("communities", []any{"1:2:3"})), "spec.bgp.peers[0].communities[0]", "should match", rejects},
		{"community-empty", set("bgp.peers", peerWith("communities", []any{""})), "spec.bgp.peers[0].communities[0]", "should match", rejects},
		{"community-duplicate", set("bgp.peers", peerWith("communities", []any{"1:2", "1:2"})), "spec.bgp.peers[0].communities[1]", "Duplicate value", rejects},
		{"communities-too-many", set("bgp.peers", peerWith("communities", strs(v1alpha1.MaxCommunities+1, "1:%d"))), "spec.bgp.peers[0].communities", "must have at most 16 items", rejects},
		{"large-community-big", set("bgp.peers", peerWith("largeCommunities", []any{"4294967296:0:0"})), "spec.bgp.peers[0].largeCommunities[0]", "each at most 4294967295", rejects},
		{"large-community-two-parts", set("bgp.peers", peerWith("largeCommunities", []any{"1:2"})), "spec.bgp.peers[0].largeCommunities[0]", "should match", rejects},
		{"large-communities-too-many", set("bgp.peers", peerWith("largeCommunities", strs(v1alpha1.MaxCommunities+1, "1:2:%d"))), "spec.bgp.peers[0].largeCommunities", "must have at most 16 items", rejects},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spec()
			tc.change(s)
			obj := nodeConfig("invalid-"+strings.ToLower(strings.ReplaceAll(tc.name, "^", "")), s)
			_, err := nc.Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil {
				t.Fatalf("API server accepted %v", s)
			}
			if !strings.Contains(err.Error(), tc.field+":") || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q\nwant one naming %s with %q", err, tc.field, tc.msg)
			}
			// The agent validates again; where it can read the field it must
			// reject what the schema rejects.
			ncfg, ok := typedOK(obj)
			if !ok || tc.model == unrepresentable {
				return
			}
			if _, err := model.NodeFromConfig(ncfg); err == nil {
				t.Errorf("the schema rejects it, but model.NodeFromConfig accepts it")
			}
		})
	}
}

// typed converts a NodeConfig the way an informer's typed client would.
func typed(t *testing.T, u *unstructured.Unstructured) *v1alpha1.NodeConfig {
	t.Helper()
	nc, ok := typedOK(u)
	if !ok {
		t.Fatalf("cannot convert %v to a NodeConfig", u.Object)
	}
	return nc
}

func typedOK(u *unstructured.Unstructured) (*v1alpha1.NodeConfig, bool) {
	var nc v1alpha1.NodeConfig
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &nc); err != nil {
		return nil, false
	}
	return &nc, true
}

// A stored NodeConfig shows its printer columns, and status is a subresource:
// the agent's condition lands through /status and shows in the Accepted column.
func TestPrinterColumnsAndStatus(t *testing.T) {
	nc := client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	obj, err := nc.Create(ctx, nodeConfig("host001", spec()), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Delete(context.Background(), "host001", metav1.DeleteOptions{}) })

	// A status written with the object is dropped: only /status sets it.
	withStatus := obj.DeepCopy()
	unstructured.SetNestedField(withStatus.Object, int64(7), "status", "observedGeneration")
	if got, err := nc.Update(ctx, withStatus, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	} else if _, found, _ := unstructured.NestedInt64(got.Object, "status", "observedGeneration"); found {
		t.Errorf("status set through the main resource: %v", got.Object["status"])
	}

	cur, err := nc.Get(ctx, "host001", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cond := map[string]any{
		"type": v1alpha1.ConditionAccepted, "status": "False", "reason": v1alpha1.ReasonInvalid,
		"message": "spec.cidr6 overlaps node host002", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
		"observedGeneration": cur.GetGeneration(),
	}
	unstructured.SetNestedField(cur.Object, map[string]any{
		"observedGeneration": cur.GetGeneration(), "conditions": []any{cond},
		"usage": map[string]any{
			"pools": []any{
				map[string]any{"family": "ipv6", "cidr": "2001:db8:42:1::/64", "allocated": int64(3), "free": "18446744073709551612"},
				map[string]any{"family": "ipv4", "cidr": "10.42.1.0/24", "allocated": int64(3), "free": "250"},
			},
			"bgpConfigured": int64(2), "bgpEstablished": int64(1),
		},
	}, "status")
	if _, err := nc.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update status: %v", err)
	}
	// Conditions are a map keyed by type: two Accepted conditions are refused.
	dup, _ := nc.Get(ctx, "host001", metav1.GetOptions{})
	unstructured.SetNestedSlice(dup.Object, []any{cond, cond}, "status", "conditions")
	if _, err := nc.UpdateStatus(ctx, dup, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "Duplicate value") {
		t.Errorf("two Accepted conditions: %v, want a duplicate error", err)
	}

	out, err := exec.CommandContext(ctx, "kubectl", "--kubeconfig", controlPlane(t).Kubeconfig, "get", "nc", "host001").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get nc: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("kubectl get nc:\n%s", out)
	}
	header, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	want := []string{"NAME", "CIDR6", "CIDR4", "ASN", "ACCEPTED", "FREE4", "BGP", "AGE"}
	if strings.Join(header, " ") != strings.Join(want, " ") || len(row) != len(want) {
		t.Fatalf("kubectl get nc:\n%s\nwant columns %v", out, want)
	}
	for i, v := range []string{"host001", "2001:db8:42:1::/64", "10.42.1.0/24", "65101", "False", "250", "1"} {
		if row[i] != v {
			t.Errorf("column %s = %q, want %q", header[i], row[i], v)
		}
	}
}
