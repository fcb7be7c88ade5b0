package datapath

import (
	"os"
	"strings"
	"testing"

	"github.com/fritzlab/flock/internal/testns"
)

// assertNothingLeft fails when a failed Setup left anything of a behind.
func (n *testNode) assertNothingLeft(t *testing.T, a Attachment) {
	t.Helper()
	if hasLink(n.ns, a.hostIface()) {
		t.Errorf("host veth %s left behind", a.hostIface())
	}
	if _, err := os.Stat(a.Netns); err == nil && strings.HasPrefix(a.Netns, "/run/netns/") {
		if veths := testns.Run(t, "ip", "-n", podNS(a), "-o", "link", "show", "type", "veth"); veths != "" {
			t.Errorf("pod end left behind: %s", veths)
		}
	}
	if left := n.podRoutes(t); left != "" {
		t.Errorf("flock routes left behind:\n%s", left)
	}
}

func TestSetupRollsBack(t *testing.T) {
	requireRoot(t)
	n := newNode(t)
	tests := []struct {
		name    string
		prepare func(t *testing.T, a *Attachment)
		wantErr string
	}{{
		name:    "bogus netns path",
		prepare: func(t *testing.T, a *Attachment) { a.Netns = "/run/netns/flk-dp-does-not-exist" },
		wantErr: "open netns /run/netns/flk-dp-does-not-exist",
	}, {
		name:    "netns path not a netns",
		prepare: func(t *testing.T, a *Attachment) { a.Netns = "/proc/self/ns/mnt" },
		wantErr: "open netlink socket in /proc/self/ns/mnt",
	}, {
		name: "pod address refused",
		prepare: func(t *testing.T, a *Attachment) {
			// The pod end is born with IPv6 off, so its /128 is refused.
			testns.Run(t, "ip", "netns", "exec", podNS(*a), "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
		},
		wantErr: "add address 2001:db8:42:1::70/128 to eth0 in " + testns.Path(""),
	}, {
		name: "pod end name taken",
		prepare: func(t *testing.T, a *Attachment) {
			testns.Run(t, "ip", "-n", podNS(*a), "link", "add", "eth0", "type", "bridge")
			t.Cleanup(func() {
				if !hasLink(podNS(*a), "eth0") {
					t.Errorf("the pod's own eth0 was deleted")
				}
			})
		},
		wantErr: "add veth " + HostIfaceName("rb-pod end name taken"),
	}, {
		name: "host route taken by another pod",
		prepare: func(t *testing.T, a *Attachment) {
			other := attachment(t, "rb-other", 0x71, a.IPv4.As4()[3])
			n.setup(t, other)
			t.Cleanup(func() {
				if err := n.k.Check(other); err != nil {
					t.Errorf("the other pod was harmed: %v", err)
				}
				_ = n.k.Teardown(other)
			})
		},
		wantErr: "add route 10.42.1.70/32 dev " + HostIfaceName("rb-host route taken by another pod"),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := attachment(t, "rb-"+tt.name, 0x70, 70)
			tt.prepare(t, &a)
			_, err := n.k.Setup(a)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Setup() = %v, want an error containing %q", err, tt.wantErr)
			}
			if tt.name == "host route taken by another pod" {
				// The other pod's route must stay; only ours may not.
				if hasLink(n.ns, a.hostIface()) {
					t.Errorf("host veth %s left behind", a.hostIface())
				}
				return
			}
			n.assertNothingLeft(t, a)
		})
	}
}

func TestSetupReplacesStaleVeth(t *testing.T) {
	requireRoot(t)
	n := newNode(t)
	a := attachment(t, "stale", 0x80, 80)
	first := n.setup(t, a)
	// A retried ADD, after the runtime gave up waiting for the first.
	second := n.setup(t, a)
	if first.PodIfIndex == second.PodIfIndex && first.PodMAC == second.PodMAC {
		t.Errorf("second Setup did not replace the veth: %+v", second)
	}
	if err := n.k.Check(a); err != nil {
		t.Errorf("Check: %v", err)
	}
	mustPing(t, podNS(a), testGw4.String())
	mustPing(t, podNS(a), "fe80::1%eth0")
	if got, _ := n.k.HostIfaces(); len(got) != 1 {
		t.Errorf("HostIfaces() = %v, want one", got)
	}
}
