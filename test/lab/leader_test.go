package lab

import (
	"context"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// leaseHolder is the holder of flock-controller's Lease, "" while there
// is none.
func (e *env) leaseHolder() string {
	l, err := e.cs.CoordinationV1().Leases("kube-system").Get(context.Background(), "flock-controller", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// killLeader kills the flock-controller replica holding the Lease with
// SIGKILL (no release, as a crash) and waits until the other one leads;
// it returns when the leader was killed. The lab runs two replicas.
func (e *env) killLeader(t *testing.T) (killed time.Time) {
	t.Helper()
	pids := e.lab.ControllerPids()
	held := e.leaseHolder()
	if pids[held] == 0 || len(pids) != 2 {
		t.Fatalf("lease held by %q, replicas %v: want one of two running replicas", held, pids)
	}
	if err := syscall.Kill(pids[held], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = time.Now()
	waitFor(t, 60*time.Second, "the other replica leads", func() (bool, string) {
		h := e.leaseHolder()
		return h != held && pids[h] != 0, h
	})
	return killed
}
