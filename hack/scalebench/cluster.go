package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/nsnet"
)

// api is the benchmark's control plane and its admin clients, with limits
// high enough for many parallel writers.
type api struct {
	cp  *controlplane.ControlPlane
	cs  kubernetes.Interface
	dyn dynamic.Interface
}

func startAPI(ctx context.Context, dir string) (*api, error) {
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: dir, Log: os.Stderr})
	if err != nil {
		return nil, err
	}
	cfg := cp.RESTConfig()
	cfg.QPS, cfg.Burst = 5000, 10000
	return &api{cp: cp, cs: kubernetes.NewForConfigOrDie(cfg), dyn: dynamic.NewForConfigOrDie(cfg)}, nil
}

// parallel runs f(0..n-1) on workers goroutines; the first error stops it.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for first.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return *e
	}
	return nil
}

func ignoreExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (a *api) namespace(ctx context.Context, name string, labels map[string]string) error {
	_, err := a.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	return ignoreExists(err)
}

// node creates a Node and its NodeConfig (pools cidr6, cidr4).
func (a *api) node(ctx context.Context, name, cidr6, cidr4 string, anycast []string) error {
	if _, err := a.cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return err
	}
	spec := map[string]any{"cidr6": cidr6, "cidr4": cidr4}
	if anycast != nil {
		var allowed []any
		for _, c := range anycast {
			allowed = append(allowed, c)
		}
		spec["anycast"] = map[string]any{"allowedCIDRs": allowed}
	}
	nc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.SchemeGroupVersion.String(), "kind": v1alpha1.NodeConfigKind,
		"metadata": map[string]any{"name": name}, "spec": spec,
	}}
	_, err := a.dyn.Resource(v1alpha1.NodeConfigGVR).Create(ctx, nc, metav1.CreateOptions{})
	return ignoreExists(err)
}

// pod creates a pod on node; with ips, its status gets them (a second
// request, as a kubelet would).
func (a *api) pod(ctx context.Context, namespace, name, node string, labels, ann map[string]string, ips ...string) (*corev1.Pod, error) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels, Annotations: ann},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name: "serve", Image: "lab", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP}},
		}}},
	}
	p, err := a.cs.CoreV1().Pods(namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil || len(ips) == 0 {
		return p, err
	}
	p.Status.Phase = corev1.PodRunning
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	p.Status.PodIP = ips[0]
	return a.cs.CoreV1().Pods(namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
}

// setReady sets a pod's Ready condition.
func (a *api) setReady(ctx context.Context, namespace, name string, ready bool) error {
	p, err := a.cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.Now()}}
	_, err = a.cs.CoreV1().Pods(namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}

// appPolicy lets pods app=<to> in namespace receive, on port, from pods
// app=<from> of the namespaces labelled fromNS (nil: the policy's own).
func appPolicy(namespace, name, to, from string, fromNS map[string]string, port int) *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	p := intstr.FromInt(port)
	peer := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": from}}}
	if fromNS != nil {
		peer.NamespaceSelector = &metav1.LabelSelector{MatchLabels: fromNS}
	}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": to}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{peer}, Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p}},
			}},
		},
	}
}

func (a *api) policy(ctx context.Context, np *networkingv1.NetworkPolicy) error {
	_, err := a.cs.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{})
	return ignoreExists(err)
}

// forward listens on 127.0.0.1:6443 inside the namespace netns and
// copies every connection to the API server, so an agent in a node
// namespace reaches it as it would on a node.
func forward(ctx context.Context, netns, target string) (string, error) {
	ln, err := nsnet.Listen(ctx, netns, "tcp", "127.0.0.1:6443")
	if err != nil {
		return "", err
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return "https://127.0.0.1:6443", nil
}

func apiHost(server string) string {
	var host string
	fmt.Sscanf(server, "https://%s", &host)
	return host
}
