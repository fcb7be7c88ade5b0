package lab

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab"
)

// TestNodePool: three nodes come up from the lab's NodePool alone (no
// NodeConfig written by hand): flock-controller made each one, with
// distinct blocks and BGP peers that each agent resolved to its own
// default gateway; the router learned every pool over BGP, and pods on all
// three nodes reach each other over IPv6 and IPv4. Then the leading
// controller is killed: the other replica takes the Lease over and serves
// a Node that joins after.
func TestNodePool(t *testing.T) {
	e := up(t, 3)
	ctx := context.Background()
	seen := map[netip.Prefix]string{}
	for _, n := range e.lab.Nodes {
		u, err := e.dyn().Resource(v1alpha1.NodeConfigGVR).Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pool := u.GetLabels()[v1alpha1.LabelNodePool]; pool != lab.PoolName {
			t.Errorf("%s: NodeConfig labelled pool %q, want %q (made by flock-controller)", n.Name, pool, lab.PoolName)
		}
		for _, p := range []netip.Prefix{n.Pool6, n.Pool4} {
			if other, dup := seen[p]; dup {
				t.Errorf("%s and %s share %s", n.Name, other, p)
			}
			seen[p] = n.Name
			waitFor(t, 60*time.Second, "router learns "+p.String(), func() (bool, string) { return e.routerHas(p.String(), true) })
		}
	}

	const port = 8080
	pods := map[string]*corev1.Pod{}
	for _, n := range e.lab.Nodes {
		p := servePod("default", "np-"+n.Name, nil, port)
		p.Spec.NodeName = n.Name
		e.create(p)
	}
	for _, n := range e.lab.Nodes {
		pods[n.Name] = e.waitReady("default", "np-"+n.Name)
	}
	for src, sp := range pods {
		for dst, dp := range pods {
			if src == dst {
				continue
			}
			v6, v4 := podAddrs(dp)
			for _, a := range []netip.Addr{v6, v4} {
				if got, err := e.tcpAsk(sp, a, port); err != nil || got != "default/np-"+dst {
					t.Errorf("%s -> %s at %s: %q %v", src, dst, a, got, err)
				}
			}
		}
	}

	// Leader failover.
	e.killLeader(t)
	// A Node object without a lab node behind it: the new leader gives it
	// the next blocks, and deletes its NodeConfig with it.
	extra := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("np-extra-%d", time.Now().UnixNano()%1000)}}
	if _, err := e.cs.CoreV1().Nodes().Create(ctx, extra, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the new leader makes "+extra.Name+"'s NodeConfig", func() (bool, string) {
		u, err := e.dyn().Resource(v1alpha1.NodeConfigGVR).Get(ctx, extra.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		spec, _ := u.Object["spec"].(map[string]any)
		p, err := netip.ParsePrefix(fmt.Sprint(spec["cidr6"]))
		if err != nil {
			return false, err.Error()
		}
		if other, dup := seen[p]; dup {
			t.Fatalf("%s got %s, %s's pool", extra.Name, p, other)
		}
		return true, ""
	})
	if err := e.cs.CoreV1().Nodes().Delete(ctx, extra.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, extra.Name+"'s NodeConfig deleted with its Node", func() (bool, string) {
		_, err := e.dyn().Resource(v1alpha1.NodeConfigGVR).Get(ctx, extra.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}
