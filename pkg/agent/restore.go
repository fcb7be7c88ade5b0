package agent

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/store"
)

// AttachmentLister lists the flock veths the kernel has (datapath.Kernel
// is one). An agent whose data path has none restores nothing.
type AttachmentLister interface {
	Attached() ([]datapath.Live, error)
}

// NodeRecorder reports a problem of the node itself (kube.Recorder: a
// Warning Event on the Node). Recorders without it only log.
type NodeRecorder interface {
	NodeWarning(reason, message string)
}

// RestorePlan is what the store lacks compared with the kernel.
type RestorePlan struct {
	// Rebuild are allocations to write back: a veth whose alias names its
	// container and carries addresses, with no allocation of its own.
	Rebuild []store.Record
	// Held are addresses in use on a flock veth that no allocation records
	// and that cannot be rebuilt (no usable alias): reserved, never handed
	// out, while the veth is there. Value: the veth.
	Held map[netip.Addr]string
	// Notes say why a veth could not be rebuilt, or where the kernel and
	// the store disagree, one line each.
	Notes []string
}

// PlanRestore is the pure decision of Restore: the store's allocations
// against the kernel's flock veths. The kernel wins where they disagree:
// an address it shows in use is never free, whatever the store says.
func PlanRestore(recs []store.Record, live []datapath.Live, now time.Time) RestorePlan {
	plan := RestorePlan{Held: map[netip.Addr]string{}}
	byIface := map[string]store.Record{}
	owner := map[netip.Addr]string{}
	for _, r := range recs {
		byIface[r.HostIface] = r
		for _, a := range addrs(r) {
			owner[a] = r.HostIface
		}
	}
	for _, l := range live {
		if len(l.Addrs) == 0 {
			continue // an ADD being rolled back, or a veth of nothing
		}
		if r, ok := byIface[l.HostIface]; ok {
			for _, a := range l.Addrs {
				if !slices.Contains(addrs(r), a) && !slices.Contains(r.Anycast, a) {
					plan.hold(a, l.HostIface, owner, fmt.Sprintf("veth %s carries %s, which its allocation (container %s) does not list", l.HostIface, a, r.ContainerID))
				}
			}
			continue
		}
		rec, err := rebuild(l, now)
		if err != nil {
			for _, a := range l.Addrs {
				plan.hold(a, l.HostIface, owner, "")
			}
			plan.Notes = append(plan.Notes, fmt.Sprintf("veth %s carries %v and has no allocation; not rebuilt (%v): its addresses stay reserved while it exists", l.HostIface, l.Addrs, err))
			continue
		}
		clash := false
		for _, a := range addrs(rec) {
			if o, ok := owner[a]; ok {
				clash = true
				plan.Notes = append(plan.Notes, fmt.Sprintf("veth %s carries %s, which the allocation of veth %s lists too; not rebuilt", l.HostIface, a, o))
			}
		}
		if clash {
			for _, a := range l.Addrs {
				plan.hold(a, l.HostIface, owner, "")
			}
			continue
		}
		for _, a := range addrs(rec) {
			owner[a] = l.HostIface
		}
		plan.Rebuild = append(plan.Rebuild, rec)
	}
	return plan
}

// hold reserves a kernel address that no allocation covers.
func (p *RestorePlan) hold(a netip.Addr, iface string, owner map[netip.Addr]string, note string) {
	if _, ok := owner[a]; ok {
		return // reserved by an allocation already
	}
	p.Held[a] = "veth " + iface
	if note != "" {
		p.Notes = append(p.Notes, note)
	}
}

// rebuild makes the allocation of a live veth from what it carries.
func rebuild(l datapath.Live, now time.Time) (store.Record, error) {
	if l.OwnerErr != nil {
		return store.Record{}, l.OwnerErr
	}
	o := l.Owner
	r := store.Record{
		ContainerID: o.ContainerID, IfName: o.IfName, Netns: o.Netns,
		Namespace: o.Namespace, Name: o.Name, UID: o.UID,
		HostIface: l.HostIface, MTU: l.MTU, Created: now, Anycast: slices.Clone(l.Anycast),
	}
	if r.IfName == "" {
		r.IfName = "eth0"
	}
	if r.MTU == datapath.DefaultMTU {
		r.MTU = 0
	}
	for _, a := range l.Addrs {
		switch {
		case a.Is6() && !r.IPv6.IsValid():
			r.IPv6 = a
		case a.Is4() && !r.IPv4.IsValid():
			r.IPv4 = a
		default:
			return store.Record{}, fmt.Errorf("more than one address of a family: %v", l.Addrs)
		}
	}
	if r.IPv4.IsValid() {
		if !l.Gateway4.Is4() {
			return store.Record{}, fmt.Errorf("no IPv4 gateway readable in the pod's netns %q", o.Netns)
		}
		r.Gateway4 = l.Gateway4
	}
	if r.Netns == "" {
		return store.Record{}, fmt.Errorf("the alias names no netns")
	}
	return r, nil
}

// Restore reconciles the store with the kernel at start, before the first
// Sync: allocations lost with a damaged file are rebuilt where the veth's
// alias names its container, and every other address a flock veth
// carries is held (never allocated) while the veth exists. Each
// quarantined allocation file gets one log line saying what became of it,
// and a Warning Event (on the pod when it was rebuilt, else on the node)
// where the recorder makes Events.
func (a *Agent) Restore() error {
	lister, ok := a.dp.(AttachmentLister)
	if !ok {
		return nil
	}
	live, err := lister.Attached()
	if err != nil {
		return fmt.Errorf("restore allocations from the kernel: %w", err)
	}
	plan := PlanRestore(a.store.List(), live, time.Now())
	rebuilt := map[string]store.Record{}
	for _, r := range plan.Rebuild {
		if err := a.store.Save(r); err != nil {
			for _, ip := range addrs(r) {
				plan.Held[ip] = "veth " + r.HostIface
			}
			a.log.Error("rebuild allocation from the kernel", "veth", r.HostIface, "err", err)
			continue
		}
		rebuilt[store.KeyFile(r.Key())] = r
	}
	for _, n := range plan.Notes {
		a.log.Warn("allocations and kernel differ", "detail", n)
	}
	for _, q := range a.store.Quarantined() {
		if r, ok := rebuilt[q.File]; ok {
			delete(rebuilt, q.File)
			a.log.Error("allocation file corrupt: quarantined, allocation rebuilt from the kernel",
				"file", q.File, "quarantined", q.Path, "err", q.Err, "pod", r.Namespace+"/"+r.Name,
				"container", r.ContainerID, "veth", r.HostIface, "ipv6", r.IPv6, "ipv4", r.IPv4)
			pod := &model.Pod{Namespace: r.Namespace, Name: r.Name, UID: r.UID}
			if pod.Name != "" {
				a.rec.PodWarning(pod, "FlockAllocationRebuilt", fmt.Sprintf(
					"allocation file %s was corrupt (%v): quarantined as %s, allocation rebuilt from veth %s", q.File, q.Err, q.Path, r.HostIface))
			}
			continue
		}
		msg := fmt.Sprintf("allocation file %s is corrupt (%v): quarantined as %s; no flock veth names its attachment, so there is nothing to rebuild (addresses on veths without an allocation stay reserved)", q.File, q.Err, q.Path)
		a.log.Error("allocation file corrupt: quarantined, nothing to rebuild", "file", q.File, "quarantined", q.Path, "err", q.Err)
		if nr, ok := a.rec.(NodeRecorder); ok {
			nr.NodeWarning("FlockAllocationQuarantined", msg)
		}
	}
	for _, r := range rebuilt {
		a.log.Warn("allocation rebuilt from the kernel", "pod", r.Namespace+"/"+r.Name, "container", r.ContainerID, "veth", r.HostIface, "ipv6", r.IPv6, "ipv4", r.IPv4)
	}
	a.mu.Lock()
	a.held = plan.Held
	a.node, a.alloc = nil, nil // the next Sync seeds a new allocator with them
	a.mu.Unlock()
	return nil
}

// releaseHeld forgets held addresses whose veth is gone.
func (a *Agent) releaseHeld(live []datapath.Live) {
	present := map[netip.Addr]bool{}
	for _, l := range live {
		for _, ip := range l.Addrs {
			present[ip] = true
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for ip, o := range a.held {
		if present[ip] {
			continue
		}
		delete(a.held, ip)
		if a.alloc != nil {
			a.alloc.Release(ip)
		}
		a.log.Info("address no longer in use in the kernel", "address", ip, "was", o)
	}
}
