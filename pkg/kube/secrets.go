package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/kube/apiclient"
)

// Secrets reads keys of Secrets in one namespace, the agent's: the BGP
// passwords its NodeConfig names. Only Secrets labelled
// v1alpha1.LabelBGPPassword=true are used: RBAC lets the agent GET every
// Secret of its namespace (it cannot grant by label), and whoever may edit
// a NodeConfig must not get any other Secret kept there written to the
// host's bird.conf. Each read is one GET, not an informer: an
// informer would need list and watch on every Secret of the namespace, and
// the agent reads a few keys every resync (15 s) at most.
type Secrets struct {
	client    apiclient.Interface
	namespace string
}

// NewSecrets returns a reader of the Secrets in namespace.
func NewSecrets(client apiclient.Interface, namespace string) *Secrets {
	return &Secrets{client: client, namespace: namespace}
}

// Value returns the value of key in the Secret name. The error names the
// Secret and the key, never the value.
func (s *Secrets) Value(ctx context.Context, name, key string) (string, error) {
	sec := &corev1.Secret{}
	if err := s.client.Get(ctx, apiclient.Secrets, s.namespace, name, sec); err != nil {
		return "", fmt.Errorf("read secret %s/%s: %w", s.namespace, name, err)
	}
	if sec.Labels[v1alpha1.LabelBGPPassword] != "true" {
		return "", fmt.Errorf("secret %s/%s is not labelled %s=true: the agent uses only Secrets meant for it", s.namespace, name, v1alpha1.LabelBGPPassword)
	}
	if v, ok := sec.Data[key]; ok {
		return string(v), nil
	}
	return "", fmt.Errorf("secret %s/%s has no key %q", s.namespace, name, key)
}
