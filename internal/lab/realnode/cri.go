package realnode

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI is a client of one node's containerd CRI service: what crictl would
// do, for flock-lab exec, status, down and the tests.
type CRI struct {
	conn *grpc.ClientConn
	runtimeapi.RuntimeServiceClient
	runtimeapi.ImageServiceClient
}

// DialCRI connects to a containerd socket (the connection is made on first use).
func DialCRI(socket string) (*CRI, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("cri %s: %w", socket, err)
	}
	return &CRI{conn: conn, RuntimeServiceClient: runtimeapi.NewRuntimeServiceClient(conn), ImageServiceClient: runtimeapi.NewImageServiceClient(conn)}, nil
}

func (c *CRI) Close() error { return c.conn.Close() }

// Sandboxes lists every pod sandbox, ready or not (crictl pods).
func (c *CRI) Sandboxes(ctx context.Context) ([]*runtimeapi.PodSandbox, error) {
	resp, err := c.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("list pod sandboxes: %w", err)
	}
	return resp.Items, nil
}

// RemoveAll stops and removes every sandbox (crictl rmp -fa): containerd
// calls CNI DEL for each, so the agent must still run.
func (c *CRI) RemoveAll(ctx context.Context) error {
	boxes, err := c.Sandboxes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range boxes {
		if _, err := c.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: b.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop sandbox %s (%s/%s): %w", b.Id, b.Metadata.Namespace, b.Metadata.Name, err))
			continue
		}
		if _, err := c.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: b.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox %s (%s/%s): %w", b.Id, b.Metadata.Namespace, b.Metadata.Name, err))
		}
	}
	return errors.Join(errs...)
}

// PodContainer finds the running container of a pod: the one named
// container, or the first when container is "".
func (c *CRI) PodContainer(ctx context.Context, namespace, pod, container string) (*runtimeapi.Container, error) {
	resp, err := c.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{
			"io.kubernetes.pod.namespace": namespace,
			"io.kubernetes.pod.name":      pod,
		},
	}})
	if err != nil {
		return nil, fmt.Errorf("list containers of %s/%s: %w", namespace, pod, err)
	}
	for _, ct := range resp.Containers {
		if container == "" || ct.Metadata.Name == container {
			return ct, nil
		}
	}
	return nil, fmt.Errorf("pod %s/%s has no running container %q", namespace, pod, container)
}

// Exec runs cmd in a container and returns its output and exit code
// (crictl exec -s; non-interactive).
func (c *CRI) Exec(ctx context.Context, containerID string, cmd []string, timeoutSeconds int64) (stdout, stderr []byte, code int32, err error) {
	resp, err := c.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: containerID, Cmd: cmd, Timeout: timeoutSeconds})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("exec in %s: %w", containerID, err)
	}
	return resp.Stdout, resp.Stderr, resp.ExitCode, nil
}
