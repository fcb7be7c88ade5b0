package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and Version of the API.
const (
	Group   = "flock.fritzlab.net"
	Version = "v1alpha1"
)

// SchemeGroupVersion is the group and version NodeConfig is registered under.
var SchemeGroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// Resource names of the API, as clients address them.
const (
	// NodeConfigResource is the plural resource name (`kubectl get nodeconfigs`).
	NodeConfigResource = "nodeconfigs"
	// NodeConfigKind is the kind of a NodeConfig object.
	NodeConfigKind = "NodeConfig"
	// NodePoolResource is the plural resource name of NodePools.
	NodePoolResource = "nodepools"
	// NodePoolKind is the kind of a NodePool object.
	NodePoolKind = "NodePool"
)

// NodeConfigGVR is the resource a dynamic client or an informer watches.
var NodeConfigGVR = SchemeGroupVersion.WithResource(NodeConfigResource)

// NodePoolGVR is the NodePool resource.
var NodePoolGVR = SchemeGroupVersion.WithResource(NodePoolResource)

var (
	// SchemeBuilder registers the API's types with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds NodeConfig and NodeConfigList to a scheme, e.g. the
	// one a typed client or a codec decodes with.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource qualifies a resource name of this group (client-go's errors and
// listers want a GroupResource).
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion, &NodeConfig{}, &NodeConfigList{}, &NodePool{}, &NodePoolList{})
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return nil
}
