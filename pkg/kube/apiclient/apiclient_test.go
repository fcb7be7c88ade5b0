package apiclient_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/controlplane/controlplanetest"
	"github.com/fritzlab/flock/pkg/kube/apiclient"
	"github.com/fritzlab/flock/pkg/kube/apiclient/apiclientfake"
)

// TestAgainstAPIServer runs every verb of the REST client, and an informer
// on its list-watch, against a real kube-apiserver.
func TestAgainstAPIServer(t *testing.T) {
	cp, _ := controlplanetest.StartWithAgent(t)
	cfg := cp.RESTConfig()
	var mu sync.Mutex
	answered := map[string]string{} // path prefix -> the last response's content type
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if err == nil {
				prefix := "/apis/"
				if strings.HasPrefix(req.URL.Path, "/api/") {
					prefix = "/api/"
				}
				mu.Lock()
				answered[prefix] = resp.Header.Get("Content-Type")
				mu.Unlock()
			}
			return resp, err
		})
	})
	c, dyn, err := apiclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	// Cluster-scoped: create a Node, patch its status subresource.
	node := &corev1.Node{}
	if err := c.Create(ctx, apiclient.Nodes, "", &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "apiclient-node"}}, node); err != nil {
		t.Fatal(err)
	}
	patch := []byte(`{"status":{"conditions":[{"type":"NetworkUnavailable","status":"False","reason":"FlockReady"}]}}`)
	if err := c.Patch(ctx, apiclient.Nodes, "", node.Name, types.StrategicMergePatchType, patch, node, "status"); err != nil {
		t.Fatal(err)
	}
	got := &corev1.Node{}
	if err := c.Get(ctx, apiclient.Nodes, "", node.Name, got); err != nil {
		t.Fatal(err)
	}
	if len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Reason != "FlockReady" {
		t.Errorf("node conditions after the status patch = %+v", got.Status.Conditions)
	}

	// Namespaced: an informer sees a Secret created and patched twice.
	ns := "apiclient-test"
	if err := c.Create(ctx, apiclient.Namespaces, "", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, &corev1.Namespace{}); err != nil {
		t.Fatal(err)
	}
	inf := cache.NewSharedIndexInformer(c.ListWatch(apiclient.Secrets, ns, func(o *metav1.ListOptions) { o.LabelSelector = "app=flock" }), &corev1.Secret{}, 0, cache.Indexers{})
	go inf.RunWithContext(ctx)
	sec := &corev1.Secret{}
	if err := c.Create(ctx, apiclient.Secrets, ns, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s", Labels: map[string]string{"app": "flock"}},
		StringData: map[string]string{"k": "v1"},
	}, sec); err != nil {
		t.Fatal(err)
	}
	if err := c.Patch(ctx, apiclient.Secrets, ns, "s", types.MergePatchType, []byte(`{"stringData":{"k":"v2"}}`), sec); err != nil {
		t.Fatal(err)
	}
	if err := c.Patch(ctx, apiclient.Secrets, ns, "s", types.MergePatchType, []byte(`{"metadata":{"annotations":{"a":"b"}}}`), sec); err != nil {
		t.Fatal(err)
	}
	// Not selected by the informer's label selector.
	if err := c.Create(ctx, apiclient.Secrets, ns, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, &corev1.Secret{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		obj, ok, _ := inf.GetStore().GetByKey(ns + "/s")
		if s, isSecret := obj.(*corev1.Secret); ok && isSecret && string(s.Data["k"]) == "v2" && s.Annotations["a"] == "b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the informer did not see the patched secret: %v", obj)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if keys := inf.GetStore().ListKeys(); len(keys) != 1 {
		t.Errorf("informer keys = %v, want only %s/s", keys, ns)
	}

	list := &corev1.SecretList{}
	if err := c.List(ctx, apiclient.Secrets, ns, metav1.ListOptions{LabelSelector: "app=flock"}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "s" {
		t.Errorf("List(app=flock) = %d secrets", len(list.Items))
	}
	if err := c.Get(ctx, apiclient.Secrets, ns, "missing", &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("Get of a missing secret: %v, want NotFound", err)
	}

	// Events, and the other two groups.
	ev := &corev1.Event{}
	if err := c.Create(ctx, apiclient.Events, ns, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "e", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Secret", Namespace: ns, Name: "s"},
		Reason:         "Test", Message: "m", Type: corev1.EventTypeNormal,
	}, ev); err != nil {
		t.Fatal(err)
	}
	if err := c.List(ctx, apiclient.NetworkPolicies, "", metav1.ListOptions{}, &networkingv1.NetworkPolicyList{}); err != nil {
		t.Errorf("list networkpolicies: %v", err)
	}
	if err := c.List(ctx, apiclient.EndpointSlices, "", metav1.ListOptions{}, &discoveryv1.EndpointSliceList{}); err != nil {
		t.Errorf("list endpointslices: %v", err)
	}

	// Flock's own resources through the dynamic client.
	ncs := apiclient.NewDynamicInformer(dyn, v1alpha1.NodeConfigGVR, nil, cache.Indexers{})
	go ncs.RunWithContext(ctx)
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), ncs.HasSynced) {
		t.Fatal("the NodeConfig informer did not sync")
	}
	// Built-in types in protobuf, as client-go's typed clients ask;
	// flock's own resources in JSON (the dynamic client).
	mu.Lock()
	defer mu.Unlock()
	if got := answered["/api/"]; got != "application/vnd.kubernetes.protobuf" {
		t.Errorf("core/v1 answered in %q, want protobuf", got)
	}
	if got := answered["/apis/"]; !strings.HasPrefix(got, "application/json") {
		t.Errorf("the NodeConfig list answered in %q, want JSON", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestFakeListFiltersLabels(t *testing.T) {
	c := apiclientfake.New(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "in", Labels: map[string]string{"app": "flock"}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "out"}},
	)
	list := &corev1.SecretList{}
	if err := c.List(t.Context(), apiclient.Secrets, "a", metav1.ListOptions{LabelSelector: "app=flock"}, list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "in" {
		t.Errorf("List(app=flock) = %v", list.Items)
	}
	if err := c.Get(t.Context(), apiclient.Secrets, "a", "in", &corev1.Pod{}); err == nil {
		t.Error("Get of a Secret into a Pod: no error")
	}
}
