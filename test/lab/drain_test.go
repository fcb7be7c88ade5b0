package lab

import (
	"testing"
	"time"
)

// TestPoolDrain (issue #15, item 5): node-1's NodeConfig moves its pools
// while a pod holds addresses of the old ones. The router keeps learning
// the old pools, and reaches the pod on its old addresses, until the pod
// is deleted; then it drops them and keeps the new ones.
func TestPoolDrain(t *testing.T) {
	e := up(t, 1)
	n1 := e.lab.Nodes[0]
	old6, old4 := n1.Pool6.String(), n1.Pool4.String()
	const new6, new4 = "2001:db8:42:99::/64", "198.18.99.0/24"
	for _, p := range []string{old6, old4} {
		waitFor(t, 60*time.Second, "router learns "+p, func() (bool, string) { return e.routerHas(p, true) })
	}
	const port = 8080
	p := servePod("default", "old", nil, port)
	p.Spec.NodeName = "node-1"
	e.create(p)
	a6, a4 := podAddrs(e.waitReady("default", "old"))

	e.patchNodeConfig("node-1", map[string]any{"spec": map[string]any{"cidr6": new6, "cidr4": new4}})
	for _, p := range []string{new6, new4} {
		waitFor(t, 30*time.Second, "router learns the new pool "+p, func() (bool, string) { return e.routerHas(p, true) })
	}
	time.Sleep(2 * time.Second) // a withdrawal would have reached the router by now
	for _, p := range []string{old6, old4} {
		if ok, out := e.routerHas(p, true); !ok {
			t.Errorf("router dropped the old pool %s while a pod holds it:\n%s", p, out)
		}
	}
	for _, a := range []string{a6.String(), a4.String()} {
		if out, err := inNetns(e.lab.Router, "ping", "-c1", "-W2", a); err != nil {
			t.Errorf("router cannot reach the pod's old address %s: %v\n%s", a, err, out)
		}
	}

	e.deleteAndWait("default", "old")
	for _, p := range []string{old6, old4} {
		waitFor(t, 30*time.Second, "router drops the drained pool "+p, func() (bool, string) { return e.routerHas(p, false) })
	}
	for _, p := range []string{new6, new4} {
		if ok, out := e.routerHas(p, true); !ok {
			t.Errorf("router lost the new pool %s:\n%s", p, out)
		}
	}
}
