package crd

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// kind is one of flock's cluster-scoped CRDs as the table tests create
// it: its kind, its resource and a valid spec.
type kind struct {
	kind string
	gvr  schema.GroupVersionResource
	spec func() map[string]any
}

var (
	nodePoolKind = kind{kind: v1alpha1.NodePoolKind, gvr: v1alpha1.NodePoolGVR, spec: poolSpec}
	sapKind      = kind{kind: v1alpha1.ServiceAddressPoolKind, gvr: v1alpha1.ServiceAddressPoolGVR, spec: sapSpec}
)

// obj is the object name of spec s.
func (k kind) obj(name string, s map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.SchemeGroupVersion.String(), "kind": k.kind,
		"metadata": map[string]any{"name": name}, "spec": s,
	}}
}

// client is the resource's client on the package's control plane.
func (k kind) client(t *testing.T) dynamic.ResourceInterface {
	t.Helper()
	c, err := dynamic.NewForConfig(controlPlane(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c.Resource(k.gvr)
}

// dryRun creates (without storing) the object of the valid spec changed
// by change; it returns the spec sent and what the API server answered.
func (k kind) dryRun(t *testing.T, name string, change func(map[string]any)) (map[string]any, *unstructured.Unstructured, error) {
	t.Helper()
	s := k.spec()
	change(s)
	got, err := k.client(t).Create(context.Background(), k.obj(name, s), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	return s, got, err
}

// valid is the object the API server would store for the changed spec;
// the test fails when it refuses it.
func (k kind) valid(t *testing.T, name string, change func(map[string]any)) *unstructured.Unstructured {
	t.Helper()
	s, got, err := k.dryRun(t, "valid-"+name, change)
	if err != nil {
		t.Fatalf("API server rejected %v: %v", s, err)
	}
	return got
}

// invalidCase is a change to the valid spec that the schema refuses with
// an error naming field and saying msg.
type invalidCase struct {
	name   string
	change func(map[string]any)
	field  string
	msg    string
}

// checkInvalid runs each case as a subtest.
func (k kind) checkInvalid(t *testing.T, cases []invalidCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _, err := k.dryRun(t, "invalid-"+tc.name, tc.change)
			if err == nil {
				t.Fatalf("API server accepted %v", s)
			}
			if !strings.Contains(err.Error(), tc.field+":") || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q\nwant one naming %s with %q", err, tc.field, tc.msg)
			}
		})
	}
}
