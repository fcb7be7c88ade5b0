// Package apiclientfake is apiclient.Interface over client-go's fake
// clientset, for unit tests: objects created in the clientset's tracker
// are what the agent's informers list and watch. Only tests import it, so
// the generated clientset stays out of the agent's binary.
package apiclientfake

import (
	"context"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/pkg/kube/apiclient"
)

// Client is apiclient.Interface over a fake clientset.
type Client struct {
	*fake.Clientset
}

var _ apiclient.Interface = Client{}

// New is a fake clientset holding objects, and the client over it.
func New(objects ...runtime.Object) Client { return Client{fake.NewClientset(objects...)} }

func (c Client) ListWatch(r apiclient.Resource, namespace string, tweak func(*metav1.ListOptions)) cache.ListerWatcher {
	return apiclient.ListWatchFuncs(c.Clientset, tweak,
		func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return c.list(r, namespace, opts)
		},
		func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return c.InvokesWatch(k8stesting.NewWatchActionWithOptions(r.GroupVersionResource, namespace, opts))
		})
}

// list is the tracker's list, filtered by the label selector as the fake
// typed clients filter it (the tracker ignores selectors).
func (c Client) list(r apiclient.Resource, namespace string, opts metav1.ListOptions) (runtime.Object, error) {
	obj, err := c.Invokes(k8stesting.NewListActionWithOptions(r.GroupVersionResource, r.GroupVersionKind(), namespace, opts), nil)
	if err != nil || obj == nil {
		return obj, err
	}
	sel, err := labels.Parse(opts.LabelSelector)
	if err != nil {
		return nil, fmt.Errorf("label selector %q: %w", opts.LabelSelector, err)
	}
	if sel.Empty() {
		return obj, nil
	}
	var kept []runtime.Object
	if err := meta.EachListItem(obj, func(o runtime.Object) error {
		if m, err := meta.Accessor(o); err == nil && sel.Matches(labels.Set(m.GetLabels())) {
			kept = append(kept, o)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return obj, meta.SetList(obj, kept)
}

func (c Client) List(ctx context.Context, r apiclient.Resource, namespace string, opts metav1.ListOptions, into runtime.Object) error {
	obj, err := c.list(r, namespace, opts)
	return fill(into, obj, err)
}

func (c Client) Get(ctx context.Context, r apiclient.Resource, namespace, name string, into runtime.Object) error {
	obj, err := c.Invokes(k8stesting.NewGetAction(r.GroupVersionResource, namespace, name), nil)
	return fill(into, obj, err)
}

func (c Client) Create(ctx context.Context, r apiclient.Resource, namespace string, obj, into runtime.Object) error {
	out, err := c.Invokes(k8stesting.NewCreateAction(r.GroupVersionResource, namespace, obj), nil)
	return fill(into, out, err)
}

func (c Client) Patch(ctx context.Context, r apiclient.Resource, namespace, name string, pt types.PatchType, data []byte, into runtime.Object, subresource ...string) error {
	out, err := c.Invokes(k8stesting.NewPatchSubresourceAction(r.GroupVersionResource, namespace, name, pt, data, subresource...), nil)
	return fill(into, out, err)
}

// fill copies the tracker's answer into the caller's object.
func fill(into, obj runtime.Object, err error) error {
	if err != nil {
		return err
	}
	if obj == nil {
		return fmt.Errorf("fake clientset: no answer")
	}
	dst, src := reflect.ValueOf(into), reflect.ValueOf(obj)
	if dst.Type() != src.Type() {
		return fmt.Errorf("fake clientset answered %T, want %T", obj, into)
	}
	dst.Elem().Set(src.Elem())
	return nil
}
