// Package apiclient is the agent's client of the Kubernetes API: one REST
// client per API group it reads (core/v1, networking.k8s.io/v1,
// discovery.k8s.io/v1), over a scheme of only those groups, and the
// list-watches its informers run on.
//
// It stands in for client-go's generated Clientset. That one's scheme
// registers every API group of Kubernetes (about 50), and its typed
// clients and informers link all of them into the binary: on a node that
// cost the agent about 8 MiB of resident binary pages for groups it never
// reads (docs/performance.md). Flock's own resources go through client-go's
// dynamic client (NewDynamicInformer), which links no API group at all.
//
// Interface is what the agent's packages take, so that their unit tests
// can run on client-go's fake clientset (package apiclientfake).
package apiclient

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Resource is one API resource the agent uses.
type Resource struct {
	schema.GroupVersionResource
	// Kind is the kind of one object of the resource.
	Kind string
}

// GroupVersionKind is the kind of one object of the resource.
func (r Resource) GroupVersionKind() schema.GroupVersionKind {
	return r.GroupVersion().WithKind(r.Kind)
}

// The resources the agent reads or writes; kube's package comment lists
// the verbs.
var (
	Pods            = Resource{corev1.SchemeGroupVersion.WithResource("pods"), "Pod"}
	Nodes           = Resource{corev1.SchemeGroupVersion.WithResource("nodes"), "Node"}
	Namespaces      = Resource{corev1.SchemeGroupVersion.WithResource("namespaces"), "Namespace"}
	Services        = Resource{corev1.SchemeGroupVersion.WithResource("services"), "Service"}
	Secrets         = Resource{corev1.SchemeGroupVersion.WithResource("secrets"), "Secret"}
	Events          = Resource{corev1.SchemeGroupVersion.WithResource("events"), "Event"}
	NetworkPolicies = Resource{networkingv1.SchemeGroupVersion.WithResource("networkpolicies"), "NetworkPolicy"}
	EndpointSlices  = Resource{discoveryv1.SchemeGroupVersion.WithResource("endpointslices"), "EndpointSlice"}
)

// Interface is what the agent asks of the API server. namespace is "" for
// a cluster-scoped resource, and for every namespace in List and
// ListWatch; into receives the server's answer.
type Interface interface {
	// ListWatch is an informer's list and watch of r in namespace; tweak,
	// when not nil, edits the options of both (selectors).
	ListWatch(r Resource, namespace string, tweak func(*metav1.ListOptions)) cache.ListerWatcher
	List(ctx context.Context, r Resource, namespace string, opts metav1.ListOptions, into runtime.Object) error
	Get(ctx context.Context, r Resource, namespace, name string, into runtime.Object) error
	Create(ctx context.Context, r Resource, namespace string, obj, into runtime.Object) error
	// Patch patches the object name, or its subresource when one is given.
	Patch(ctx context.Context, r Resource, namespace, name string, pt types.PatchType, data []byte, into runtime.Object, subresource ...string) error
}

// scheme knows the types of the groups the agent uses, and nothing else.
var scheme = runtime.NewScheme()

var codecs = serializer.NewCodecFactory(scheme)

func init() {
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, networkingv1.AddToScheme, discoveryv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err) // only for a type registered twice
		}
	}
	// Status, WatchEvent and the options types, as the core group has them.
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
}

// Client is Interface over REST.
type Client struct {
	groups map[schema.GroupVersion]rest.Interface
}

var _ Interface = (*Client)(nil)

// New builds the REST clients of the agent's groups on cfg, sharing one
// HTTP client (one connection pool); the dynamic client for flock's own
// resources shares it too.
func New(cfg *rest.Config) (*Client, dynamic.Interface, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	c := &Client{groups: map[schema.GroupVersion]rest.Interface{}}
	for _, gv := range []schema.GroupVersion{corev1.SchemeGroupVersion, networkingv1.SchemeGroupVersion, discoveryv1.SchemeGroupVersion} {
		gcfg := rest.CopyConfig(cfg)
		gcfg.GroupVersion = &gv
		gcfg.APIPath = "/apis"
		if gv.Group == "" {
			gcfg.APIPath = "/api"
		}
		gcfg.NegotiatedSerializer = codecs.WithoutConversion()
		if gcfg.ContentType == "" {
			// Protobuf, as client-go's typed clients ask for built-in types
			// (rest.Request.UseProtobufAsDefault): a third of JSON's bytes,
			// and far fewer allocations to decode 30,000 pods.
			gcfg.ContentType = runtime.ContentTypeProtobuf
			gcfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
		}
		rc, err := rest.RESTClientForConfigAndClient(gcfg, hc)
		if err != nil {
			return nil, nil, fmt.Errorf("kubernetes client for %s: %w", gv, err)
		}
		c.groups[gv] = rc
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes dynamic client: %w", err)
	}
	return c, dyn, nil
}

// group is the REST client of r's group; the resources above are all of
// groups New builds.
func (c *Client) group(r Resource) rest.Interface {
	rc, ok := c.groups[r.GroupVersion()]
	if !ok {
		panic(fmt.Sprintf("apiclient: no client for group %s", r.GroupVersion()))
	}
	return rc
}

func (c *Client) ListWatch(r Resource, namespace string, tweak func(*metav1.ListOptions)) cache.ListerWatcher {
	if tweak == nil {
		tweak = func(*metav1.ListOptions) {}
	}
	return cache.NewFilteredListWatchFromClient(c.group(r), r.Resource, namespace, tweak)
}

func (c *Client) List(ctx context.Context, r Resource, namespace string, opts metav1.ListOptions, into runtime.Object) error {
	return c.group(r).Get().NamespaceIfScoped(namespace, namespace != "").Resource(r.Resource).
		VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(into)
}

func (c *Client) Get(ctx context.Context, r Resource, namespace, name string, into runtime.Object) error {
	return c.group(r).Get().NamespaceIfScoped(namespace, namespace != "").Resource(r.Resource).Name(name).Do(ctx).Into(into)
}

func (c *Client) Create(ctx context.Context, r Resource, namespace string, obj, into runtime.Object) error {
	return c.group(r).Post().NamespaceIfScoped(namespace, namespace != "").Resource(r.Resource).Body(obj).Do(ctx).Into(into)
}

func (c *Client) Patch(ctx context.Context, r Resource, namespace, name string, pt types.PatchType, data []byte, into runtime.Object, subresource ...string) error {
	return c.group(r).Patch(pt).NamespaceIfScoped(namespace, namespace != "").Resource(r.Resource).Name(name).
		SubResource(subresource...).Body(data).Do(ctx).Into(into)
}

// ListWatchFuncs is an informer's list-watch of list and watch, tweak
// (when not nil) editing the options of both; client tells the reflector
// whether it may stream the initial list instead
// (cache.ToListWatcherWithWatchListSemantics: fake clients cannot).
func ListWatchFuncs(client any, tweak func(*metav1.ListOptions),
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
) cache.ListerWatcher {
	edit := func(o *metav1.ListOptions) {
		if tweak != nil {
			tweak(o)
		}
	}
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			edit(&opts)
			return list(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			edit(&opts)
			return watchFn(ctx, opts)
		},
	}, client)
}

// NewDynamicInformer is an informer of one of flock's own resources, as
// unstructured objects, in every namespace; tweak, when not nil, edits the
// options of its list and watch. It is built as client-go's dynamicinformer
// builds one (that package links every API group through its shared
// informer factory).
func NewDynamicInformer(dyn dynamic.Interface, gvr schema.GroupVersionResource, tweak func(*metav1.ListOptions), indexers cache.Indexers) cache.SharedIndexInformer {
	res := dyn.Resource(gvr)
	lw := ListWatchFuncs(dyn, tweak,
		func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) { return res.List(ctx, opts) },
		res.Watch)
	return cache.NewSharedIndexInformerWithOptions(lw, &unstructured.Unstructured{},
		cache.SharedIndexInformerOptions{Indexers: indexers, ObjectDescription: gvr.String()})
}
