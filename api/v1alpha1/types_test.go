package v1alpha1

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

func full() *NodeConfig {
	yes, no := true, false
	return &NodeConfig{
		TypeMeta: metav1.TypeMeta{APIVersion: SchemeGroupVersion.String(), Kind: NodeConfigKind},
		ObjectMeta: metav1.ObjectMeta{
			Name:        "host001",
			Generation:  3,
			Annotations: map[string]string{"flock.fritzlab.net/ip-algo": "hash"},
		},
		Spec: NodeConfigSpec{
			CIDR6:    "2001:db8:42:1::/64",
			CIDR4:    "10.42.1.0/24",
			Defaults: &FamilyDefaults{IPv6: &yes, IPv4: &no},
			BGP: &BGPSpec{ASN: 65101, RouterID: "192.0.2.11", Peers: []BGPPeer{
				{Address: "2001:db8:42::1", ASN: 65000, BFD: true, HoldTime: 9, GracefulRestart: &no,
					RestartTime: 60, Communities: []string{"65000:1"}, LargeCommunities: []string{"65000:1:2"}},
				{Address: "192.0.2.1", ASN: 4200000000, SourceAddress: "192.0.2.11", Multihop: 2,
					PasswordSecretRef: &SecretKeyRef{Name: "bgp", Key: "router"}},
			}},
			Anycast: &AnycastSpec{AllowedCIDRs: []string{"2001:db8:ffff::/48", "192.0.2.128/25"}},
		},
		Status: NodeConfigStatus{
			ObservedGeneration: 3,
			Conditions: []metav1.Condition{{
				Type: ConditionAccepted, Status: metav1.ConditionFalse, Reason: ReasonInvalid,
				Message: "spec.cidr6: overlaps", ObservedGeneration: 3,
			}},
		},
	}
}

// A deep copy shares no pointer, slice or map with its original: changing
// every reference-typed field of the copy leaves the original as it was.
func TestDeepCopy(t *testing.T) {
	orig := full()
	want := full()
	cp := orig.DeepCopy()
	if diff := cmp.Diff(orig, cp); diff != "" {
		t.Fatalf("copy differs (-orig +copy):\n%s", diff)
	}
	*cp.Spec.Defaults.IPv6 = false
	cp.Spec.Defaults.IPv4 = nil
	cp.Spec.BGP.ASN = 1
	cp.Spec.BGP.Peers[0].Address = "2001:db8::99"
	*cp.Spec.BGP.Peers[0].GracefulRestart = true
	cp.Spec.BGP.Peers[0].Communities[0] = "1:1"
	cp.Spec.BGP.Peers[0].LargeCommunities[0] = "1:1:1"
	cp.Spec.BGP.Peers[1].PasswordSecretRef.Key = "other"
	cp.Spec.Anycast.AllowedCIDRs[1] = "198.51.100.0/24"
	cp.Status.Conditions[0].Status = metav1.ConditionTrue
	cp.Annotations["flock.fritzlab.net/ip-algo"] = "random"
	if diff := cmp.Diff(want, orig); diff != "" {
		t.Errorf("changing the copy changed the original (-want +got):\n%s", diff)
	}

	obj := orig.DeepCopyObject()
	if nc, ok := obj.(*NodeConfig); !ok || nc == orig || !cmp.Equal(nc, want) {
		t.Errorf("DeepCopyObject = %#v, want an equal, distinct *NodeConfig", obj)
	}
	list := &NodeConfigList{Items: []NodeConfig{*full(), *full()}}
	lcp := list.DeepCopyObject().(*NodeConfigList)
	lcp.Items[1].Spec.BGP.Peers[1].ASN = 7
	if list.Items[1].Spec.BGP.Peers[1].ASN != 4200000000 {
		t.Errorf("NodeConfigList deep copy shares its items")
	}
	var nilNC *NodeConfig
	if nilNC.DeepCopy() != nil {
		t.Errorf("DeepCopy of nil is not nil")
	}
}

// The JSON shape is the API: SPEC.md's field names, nothing else.
func TestJSONShape(t *testing.T) {
	got, err := json.Marshal(full().Spec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cidr6":"2001:db8:42:1::/64","cidr4":"10.42.1.0/24","defaults":{"ipv6":true,"ipv4":false},` +
		`"bgp":{"asn":65101,"routerID":"192.0.2.11","peers":[` +
		`{"address":"2001:db8:42::1","asn":65000,"bfd":true,"holdTime":9,"gracefulRestart":false,"restartTime":60,` +
		`"communities":["65000:1"],"largeCommunities":["65000:1:2"]},` +
		`{"address":"192.0.2.1","asn":4200000000,"sourceAddress":"192.0.2.11","multihop":2,` +
		`"passwordSecretRef":{"name":"bgp","key":"router"}}]},` +
		`"anycast":{"allowedCIDRs":["2001:db8:ffff::/48","192.0.2.128/25"]}}`
	if string(got) != want {
		t.Errorf("spec JSON\n got %s\nwant %s", got, want)
	}
}

func TestScheme(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []runtime.Object{&NodeConfig{}, &NodeConfigList{}} {
		gvks, _, err := s.ObjectKinds(obj)
		if err != nil || len(gvks) != 1 || gvks[0].GroupVersion() != SchemeGroupVersion {
			t.Errorf("ObjectKinds(%T) = %v, %v; want one kind in %v", obj, gvks, err, SchemeGroupVersion)
		}
	}
	if gvk := SchemeGroupVersion.WithKind(NodeConfigKind); !s.Recognizes(gvk) {
		t.Errorf("scheme does not recognise %v", gvk)
	}
	if got := Resource(NodeConfigResource).String(); got != "nodeconfigs.flock.fritzlab.net" {
		t.Errorf("Resource = %q", got)
	}
}

// The markers must repeat the exported limits as literals; this catches a
// marker and a constant drifting apart (pkg/model validates with the
// constants, the API server with the markers).
func TestSchemaLimits(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "crd", "flock.fritzlab.net_nodeconfigs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd map[string]any
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	root := dig(t, crd, "spec", "versions", "0", "schema", "openAPIV3Schema")
	spec := dig(t, root, "properties", "spec", "properties")
	status := dig(t, root, "properties", "status", "properties")
	for _, c := range []struct {
		node any
		key  string
		want int
	}{
		{dig(t, spec, "cidr6"), "maxLength", MaxCIDRLength},
		{dig(t, spec, "cidr4"), "maxLength", MaxCIDRLength},
		{dig(t, spec, "bgp", "properties", "peers"), "maxItems", MaxBGPPeers},
		{dig(t, spec, "bgp", "properties", "peers", "items", "properties", "address"), "maxLength", MaxIPLength},
		{dig(t, spec, "anycast", "properties", "allowedCIDRs"), "maxItems", MaxAllowedCIDRs},
		{dig(t, spec, "anycast", "properties", "allowedCIDRs", "items"), "maxLength", MaxCIDRLength},
		{dig(t, status, "conditions"), "maxItems", MaxConditions},
		{dig(t, spec, "bgp", "properties", "asn"), "minimum", 1},
		{dig(t, spec, "bgp", "properties", "asn"), "maximum", 1<<32 - 1},
		{dig(t, spec, "bgp", "properties", "peers", "items", "properties", "asn"), "minimum", 1},
		{dig(t, spec, "bgp", "properties", "peers", "items", "properties", "asn"), "maximum", 1<<32 - 1},
		{dig(t, spec, "bgp", "properties", "routerID"), "maxLength", len("255.255.255.255")},
		{peer(t, spec, "sourceAddress"), "maxLength", MaxIPLength},
		{peer(t, spec, "holdTime"), "maximum", MaxHoldTime},
		{peer(t, spec, "restartTime"), "maximum", MaxRestartTime},
		{peer(t, spec, "multihop"), "maximum", MaxMultihop},
		{peer(t, spec, "communities"), "maxItems", MaxCommunities},
		{peer(t, spec, "largeCommunities"), "maxItems", MaxCommunities},
		{peer(t, spec, "passwordSecretRef", "properties", "name"), "maxLength", MaxSecretNameLength},
		{peer(t, spec, "passwordSecretRef", "properties", "key"), "maxLength", MaxSecretKeyLength},
	} {
		if got := c.node.(map[string]any)[c.key]; got != float64(c.want) {
			t.Errorf("%s = %v, want %d", c.key, got, c.want)
		}
	}
	for _, c := range []struct {
		node any
		rule string
	}{
		{dig(t, spec, "cidr6"), fmt.Sprintf("cidr(self).prefixLength() <= %d", MaxPool6PrefixLength)},
		{dig(t, spec, "cidr4"), fmt.Sprintf("cidr(self).prefixLength() <= %d", MaxPool4PrefixLength)},
		{dig(t, spec, "bgp", "properties", "asn"), fmt.Sprintf("self != %d", ASTrans)},
		{dig(t, spec, "bgp", "properties", "peers", "items", "properties", "asn"), fmt.Sprintf("self != %d", ASTrans)},
		{peer(t, spec, "holdTime"), fmt.Sprintf("self >= %d", MinHoldTime)},
	} {
		if !hasRule(c.node, c.rule) {
			t.Errorf("no x-kubernetes-validations rule containing %q in %v", c.rule, c.node)
		}
	}
}

// peer digs into the schema of one spec.bgp.peers item.
func peer(t *testing.T, spec any, path ...string) any {
	t.Helper()
	return dig(t, spec, append([]string{"bgp", "properties", "peers", "items", "properties"}, path...)...)
}

func dig(t *testing.T, v any, path ...string) any {
	t.Helper()
	for _, p := range path {
		switch n := v.(type) {
		case map[string]any:
			v = n[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(n) {
				t.Fatalf("no index %s in the CRD schema", p)
			}
			v = n[i]
		default:
			t.Fatalf("no %s in the CRD schema (path %v)", p, path)
		}
	}
	if v == nil {
		t.Fatalf("no %v in the CRD schema", path)
	}
	return v
}

func hasRule(node any, rule string) bool {
	rules, _ := node.(map[string]any)["x-kubernetes-validations"].([]any)
	for _, r := range rules {
		if s, _ := r.(map[string]any)["rule"].(string); strings.Contains(s, rule) {
			return true
		}
	}
	return false
}
