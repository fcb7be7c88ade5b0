package lab

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNodeFiles(t *testing.T) {
	opts := Options{Nodes: 3}.withDefaults()
	nodes, err := opts.nodes()
	if err != nil {
		t.Fatal(err)
	}
	n := nodes[2]
	got := []string{n.Name, n.Netns, n.Dir, n.AgentSocket, n.CNIConfList, n.Pool6.String(), n.Pool4.String(), n.Addr6.String(), n.Addr4.String()}
	want := []string{
		"node-3", "flk-lab-node-3", "/run/flock-lab/nodes/node-3", "/run/flock-lab/nodes/node-3/agent.sock",
		"/run/flock-lab/nodes/node-3/cni/net.d/10-flock.conflist",
		"2001:db8:42:3::/64", "198.18.3.0/24", "2001:db8:1ab:3::2/64", "198.19.3.2/24",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("node-3 (-want +got):\n%s", diff)
	}
	if opts.podNetnsPrefix() != "flk-lab-pod-" || opts.kubeconfig() != "/var/lib/flock-lab/kubeconfig" {
		t.Errorf("paths: %s %s", opts.podNetnsPrefix(), opts.kubeconfig())
	}
}

func TestConfList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "10-flock.conflist")
	if err := writeConfList(path, "/run/flock-lab/nodes/node-1/agent.sock", "1.1.0"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal([]byte(`{"cniVersion":"1.1.0","name":"flock","plugins":[`+
		`{"type":"flock","socket":"/run/flock-lab/nodes/node-1/agent.sock"},`+
		`{"type":"portmap","backend":"nftables","capabilities":{"portMappings":true}}]}`), &want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("conflist (-want +got):\n%s", diff)
	}
}

func TestNodeConfigObject(t *testing.T) {
	nodes, _ := Options{Nodes: 1}.withDefaults().nodes()
	spec := NodeConfig(nodes[0].Node).Object["spec"]
	want := map[string]any{
		"cidr6": "2001:db8:42:1::/64", "cidr4": "198.18.1.0/24", "defaults": map[string]any{"ipv6": true, "ipv4": true},
		"bgp": map[string]any{"asn": 65101, "peers": []any{
			map[string]any{"address": "2001:db8:1ab:1::1", "asn": 65000},
			map[string]any{"address": "198.19.1.1", "asn": 65000},
		}},
		"anycast": map[string]any{"allowedCIDRs": []any{"2001:db8:ffff::/48", "192.0.2.0/24"}},
	}
	if diff := cmp.Diff(want, spec); diff != "" {
		t.Errorf("NodeConfig spec (-want +got):\n%s", diff)
	}

	// What the lab applies is owned by its Node, by UID.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", UID: "3f1e-uid"}}
	got := ownedNodeConfig(nodes[0].Node, node)
	wantOwners := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node-1", UID: "3f1e-uid"}}
	if diff := cmp.Diff(wantOwners, got.GetOwnerReferences()); diff != "" {
		t.Errorf("owner references (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, got.Object["spec"]); diff != "" {
		t.Errorf("owned NodeConfig spec (-want +got):\n%s", diff)
	}
}
