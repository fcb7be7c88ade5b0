package kube

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/fritzlab/flock/pkg/kube/apiclient/apiclientfake"
	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/policy/policytest"
)

// apiObjects turns a synthetic cluster into the API objects a cluster
// would hold (namespaces without the metadata.name label, as older API
// servers and fakes have them).
func apiObjects(in *policy.Input) []runtime.Object {
	var objs []runtime.Object
	for _, ns := range in.Namespaces {
		objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, UID: types.UID("ns-" + ns.Name), Labels: ns.Labels}})
	}
	for i, p := range in.Pods {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: types.UID(fmt.Sprintf("uid-%d", i)), Labels: p.Labels},
			Spec:       corev1.PodSpec{NodeName: p.Node, Containers: []corev1.Container{{Name: "c"}}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning},
		}
		for _, cp := range p.Ports {
			proto := map[policy.Protocol]corev1.Protocol{policy.TCP: corev1.ProtocolTCP, policy.UDP: corev1.ProtocolUDP, policy.SCTP: corev1.ProtocolSCTP}[cp.Protocol]
			pod.Spec.Containers[0].Ports = append(pod.Spec.Containers[0].Ports, corev1.ContainerPort{Name: cp.Name, Protocol: proto, ContainerPort: int32(cp.Port)})
		}
		for _, a := range p.IPs {
			pod.Status.PodIPs = append(pod.Status.PodIPs, corev1.PodIP{IP: a.String()})
		}
		objs = append(objs, pod)
	}
	for i := range in.Policies {
		np := in.Policies[i].DeepCopy()
		np.UID = types.UID(fmt.Sprintf("np-%d", i))
		objs = append(objs, np)
	}
	return objs
}

// TestInputForNode checks that the input Cluster.Input gives once it knows
// its node (only the policies selecting a local pod and the pods their
// rules can reach) translates to the same model as the whole cluster.
func TestInputForNode(t *testing.T) {
	extra := []networkingv1.NetworkPolicy{
		// Named ports on every pod (no peers) and on the pods inside an
		// ipBlock: every pod with a named port is a peer.
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-00", Name: "named-any"}, Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromString("dns"))}}},
				{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.42.0.0/20"}}},
					Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromString("metrics"))}}},
			},
		}},
	}
	// Every pod of one namespace, by the metadata.name label that only the
	// API server sets.
	byName := networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns-01", Name: "by-ns-name"}, Spec: networkingv1.NetworkPolicySpec{
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "ns-07"}}},
			}}},
		}}
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			full := policytest.Cluster(policytest.Size{Pods: 800, Local: 37, Policies: 150, Seed: seed})
			full.Policies = append(full.Policies, byName)
			if seed%2 == 1 {
				full.Policies = append(full.Policies, extra...)
			}
			c := NewCluster(apiclientfake.New(apiObjects(full)...))
			c.SetNode(policytest.Node)
			ctx := t.Context()
			go c.Run(ctx)
			eventually(t, "sync", c.HasSynced)

			var local []policy.Pod
			for _, p := range full.Pods {
				if p.Iface != "" {
					local = append(local, policy.Pod{Namespace: p.Namespace, Name: p.Name})
				}
			}
			in := c.Input(local)
			// Some seeds make every pod a peer (named-any: all have named ports).
			if (seed == 0 && len(in.Pods) >= len(full.Pods)) || len(in.Policies) >= len(full.Policies) {
				t.Errorf("Input kept %d of %d pods and %d of %d policies; want fewer", len(in.Pods), len(full.Pods), len(in.Policies), len(full.Policies))
			}
			// The local pods get their interfaces, as the controller does.
			ifaces := map[string]string{}
			for _, p := range full.Pods {
				if p.Iface != "" {
					ifaces[p.Key()] = p.Iface
				}
			}
			for i := range in.Pods {
				in.Pods[i].UID = ""
				in.Pods[i].Iface = ifaces[in.Pods[i].Key()]
			}
			in.Node = policytest.Node
			want, got := policy.Translate(full), policy.Translate(in)
			if len(want.Pods) != len(local) {
				t.Fatalf("the full translation has %d local pods, want %d", len(want.Pods), len(local))
			}
			if d := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{}), cmpopts.EquateEmpty()); d != "" {
				t.Errorf("Translate of the node's input differs from the whole cluster's (-whole +node):\n%s", d)
			}
		})
	}
}
