package lab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/topology"
)

// KubeletUser is the identity of every kubelet-lite: it binds pods, as the
// scheduler would, and writes pod and node status, so it is an admin.
const KubeletUser = "flock-lab-kubelet"

// identities are the static tokens the lab's processes authenticate with.
type identities struct {
	agent, kubelet, controller controlplane.Token
}

// newIdentities gives the agents the ServiceAccount that deploy/rbac.yaml
// binds, so the lab exercises exactly the RBAC a real cluster grants them
// (a static token of user system:serviceaccount:NS:NAME matches bindings to
// that ServiceAccount).
func newIdentities(source string) (identities, error) {
	objs, err := controlplane.ReadObjects(filepath.Join(source, "deploy", "rbac.yaml"))
	if err != nil {
		return identities{}, err
	}
	var ns, name string
	for _, o := range objs {
		if o.GetKind() == "ServiceAccount" {
			ns, name = o.GetNamespace(), o.GetName()
		}
	}
	if name == "" {
		return identities{}, fmt.Errorf("no ServiceAccount in deploy/rbac.yaml")
	}
	objs, err = controlplane.ReadObjects(filepath.Join(source, "deploy", "controller-rbac.yaml"))
	if err != nil {
		return identities{}, err
	}
	var controller controlplane.Token
	for _, o := range objs {
		if o.GetKind() == "ServiceAccount" {
			cns := o.GetNamespace()
			controller = controlplane.Token{
				Token:  controlplane.NewToken(),
				User:   "system:serviceaccount:" + cns + ":" + o.GetName(),
				UID:    "flock-lab-controller",
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + cns},
			}
		}
	}
	if controller.User == "" {
		return identities{}, fmt.Errorf("no ServiceAccount in deploy/controller-rbac.yaml")
	}
	return identities{
		controller: controller,
		agent: controlplane.Token{
			Token:  controlplane.NewToken(),
			User:   "system:serviceaccount:" + ns + ":" + name,
			UID:    "flock-lab-agent",
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns},
		},
		kubelet: controlplane.Token{
			Token:  controlplane.NewToken(),
			User:   KubeletUser,
			UID:    KubeletUser,
			Groups: []string{"system:masters"},
		},
	}, nil
}

// createNode registers the node as kubelet would, with its uplink addresses
// and pod CIDRs; kubelet-lite then keeps its Ready condition. It returns the
// Node as the API server has it (with its UID).
func createNode(ctx context.Context, cs kubernetes.Interface, n Node) (*corev1.Node, error) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.Name,
			Labels: map[string]string{
				"kubernetes.io/hostname": n.Name,
				"kubernetes.io/os":       "linux",
				"flock.fritzlab.net/lab": "true",
			},
		},
		Spec: corev1.NodeSpec{
			PodCIDR:  n.Pool6.String(),
			PodCIDRs: []string{n.Pool6.String(), n.Pool4.String()},
		},
	}
	created, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("create node %s: %w", n.Name, err)
	}
	// The TaintNodesByCondition admission plugin taints every new Node
	// not-ready; the lab has no node lifecycle controller to lift it once
	// kubelet-lite reports Ready, so lift it here, as that controller would.
	if slices.ContainsFunc(created.Spec.Taints, isNotReadyTaint) {
		created.Spec.Taints = slices.DeleteFunc(created.Spec.Taints, isNotReadyTaint)
		if created, err = cs.CoreV1().Nodes().Update(ctx, created, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("untaint node %s: %w", n.Name, err)
		}
	}
	created.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: n.Addr6.Addr().String()},
		{Type: corev1.NodeInternalIP, Address: n.Addr4.Addr().String()},
		{Type: corev1.NodeHostName, Address: n.Name},
	}
	if created, err = cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return nil, fmt.Errorf("set addresses of node %s: %w", n.Name, err)
	}
	return created, nil
}

func isNotReadyTaint(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady }

// The ranges the lab's NodeConfigs allow anycast addresses from.
var (
	LabAnycast6 = netip.MustParsePrefix("2001:db8:ffff::/48")
	LabAnycast4 = netip.MustParsePrefix("192.0.2.0/24")
)

// NodeConfig returns the lab's NodeConfig for n: its pools, both families on
// by default.
func NodeConfig(n topology.Node) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.SchemeGroupVersion.String(),
		"kind":       v1alpha1.NodeConfigKind,
		"metadata":   map[string]any{"name": n.Name},
		"spec": map[string]any{
			"cidr6":    n.Pool6.String(),
			"cidr4":    n.Pool4.String(),
			"defaults": map[string]any{"ipv6": true, "ipv4": true},
			// Without an allowlist a node grants no anycast address.
			"anycast": map[string]any{"allowedCIDRs": []any{LabAnycast6.String(), LabAnycast4.String()}},
			"bgp": map[string]any{
				"asn": NodeASN(n.Index),
				"peers": []any{
					map[string]any{"address": n.RouterAddr6.Addr().String(), "asn": RouterASN},
					map[string]any{"address": n.RouterAddr4.Addr().String(), "asn": RouterASN},
				},
			},
		},
	}}
}

// ownedNodeConfig is the NodeConfig of n with an owner reference to its
// Node, as a cluster's NodeConfigs should have: deleting the Node then
// deletes the NodeConfig (kube-controller-manager's garbage collector; the
// lab runs none, so there it stays until the lab goes down).
func ownedNodeConfig(n topology.Node, node *corev1.Node) *unstructured.Unstructured {
	u := NodeConfig(n)
	u.SetOwnerReferences([]metav1.OwnerReference{v1alpha1.NodeOwnerReference(node.Name, node.UID)})
	return u
}

// apply server-side applies obj as the lab (field manager flock-lab),
// taking over fields someone else set.
func apply(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) error {
	data, err := obj.MarshalJSON()
	if err != nil {
		return fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	force := true
	if _, err := dc.Resource(gvr).Patch(ctx, obj.GetName(), types.ApplyPatchType, data,
		metav1.PatchOptions{FieldManager: "flock-lab", Force: &force}); err != nil {
		return fmt.Errorf("apply %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	return nil
}
