package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
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
	// ServiceAddressPoolResource is the plural resource name of
	// ServiceAddressPools.
	ServiceAddressPoolResource = "serviceaddresspools"
	// ServiceAddressPoolKind is the kind of a ServiceAddressPool object.
	ServiceAddressPoolKind = "ServiceAddressPool"
)

// NodeConfigGVR is the resource a dynamic client or an informer watches.
var NodeConfigGVR = SchemeGroupVersion.WithResource(NodeConfigResource)

// NodePoolGVR is the NodePool resource.
var NodePoolGVR = SchemeGroupVersion.WithResource(NodePoolResource)

// ServiceAddressPoolGVR is the ServiceAddressPool resource.
var ServiceAddressPoolGVR = SchemeGroupVersion.WithResource(ServiceAddressPoolResource)

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
	scheme.AddKnownTypes(SchemeGroupVersion, &NodeConfig{}, &NodeConfigList{}, &NodePool{}, &NodePoolList{},
		&ServiceAddressPool{}, &ServiceAddressPoolList{})
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return nil
}

// NodeOwnerReference is the owner reference a NodeConfig carries to its
// Node (of the same name, with the Node's UID), so that the garbage
// collector of kube-controller-manager deletes the NodeConfig with the
// Node. It is not a controller reference: whatever creates NodeConfigs (an
// operator, a NodePool controller) may hold that one.
func NodeOwnerReference(name string, uid types.UID) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: name, UID: uid}
}
