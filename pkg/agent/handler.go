package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/fritzlab/flock/pkg/annotations"
	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/ipam"
	"github.com/fritzlab/flock/pkg/rpc"
	"github.com/fritzlab/flock/pkg/store"
)

// Handle answers one validated request from the plugin.
func (a *Agent) Handle(ctx context.Context, req *rpc.Request) *rpc.Response {
	var resp *rpc.Response
	switch req.Op {
	case rpc.OpAdd:
		resp = a.add(ctx, req)
	case rpc.OpDel:
		resp = a.del(req)
	case rpc.OpCheck:
		resp = a.check(req)
	case rpc.OpStatus:
		if err := a.status(ctx); err != nil {
			resp = rpc.ErrorResponse(types.ErrPluginNotAvailable, "flock agent cannot serve ADD", err)
		} else {
			resp = &rpc.Response{}
		}
	case rpc.OpGC:
		resp = a.gc(req)
	default:
		resp = rpc.ErrorResponse(types.ErrInvalidNetworkConfig, "unknown op", fmt.Errorf("op %q", req.Op))
	}
	if resp.Error != nil {
		a.log.Warn("cni call failed", "op", req.Op, "container", req.ContainerID, "ifname", req.IfName, "code", resp.Error.Code, "err", resp.Error.Error())
	}
	return resp
}

func addrs(r store.Record) []netip.Addr {
	var out []netip.Addr
	for _, ip := range []netip.Addr{r.IPv6, r.IPv4} {
		if ip.IsValid() {
			out = append(out, ip)
		}
	}
	return out
}

func attachment(r store.Record) datapath.Attachment {
	return datapath.Attachment{
		ContainerID: r.ContainerID, IfName: r.IfName, Netns: r.Netns, HostIface: r.HostIface,
		IPv6: r.IPv6, IPv4: r.IPv4, Gateway4: r.Gateway4, MTU: r.MTU,
		Namespace: r.Namespace, Name: r.Name, UID: r.UID,
	}
}

func (a *Agent) add(ctx context.Context, req *rpc.Request) *rpc.Response {
	args, _ := rpc.ParseArgs(req.Args) // validated by the server
	if args.Namespace == "" || args.Name == "" {
		return rpc.ErrorResponse(types.ErrInvalidEnvironmentVariables, "CNI_ARGS lacks the pod",
			fmt.Errorf("K8S_POD_NAMESPACE %q and K8S_POD_NAME %q must both be set", args.Namespace, args.Name))
	}
	var tm addTimer
	tm.start()
	node, alloc, err := a.Sync(ctx)
	if err != nil {
		return rpc.ErrorResponse(rpc.ErrNoNodeConfig, "node not configured", err)
	}
	pod, err := a.src.Pod(ctx, args.Namespace, args.Name)
	if err != nil {
		return rpc.ErrorResponse(types.ErrTryAgainLater, "pod metadata unavailable", fmt.Errorf("pod %s/%s: %w", args.Namespace, args.Name, err))
	}
	if args.UID != "" && pod.UID != "" && args.UID != pod.UID {
		return rpc.ErrorResponse(types.ErrTryAgainLater, "pod metadata is stale",
			fmt.Errorf("pod %s has uid %s, the runtime asked for %s", pod.Key(), pod.UID, args.UID))
	}
	intent, warnings, err := annotations.Resolve(pod, node)
	for _, w := range warnings {
		a.rec.PodWarning(pod, "FlockAnnotation", w.String())
	}
	if err != nil {
		return rpc.ErrorResponse(rpc.ErrAllocate, "cannot allocate for pod "+pod.Key(), err)
	}

	key := store.Key{ContainerID: req.ContainerID, IfName: req.IfName}
	defer a.lock(key)()
	tm.mark(&tm.lookup)
	// A repeated ADD for a live attachment rebuilds its data path on the
	// addresses it already has.
	rec, existed := a.store.Get(key)
	if existed {
		if err := a.dp.Teardown(attachment(rec)); err != nil {
			return rpc.ErrorResponse(rpc.ErrDatapath, "tear down previous attachment", err)
		}
	} else {
		got, err := alloc.Allocate(ipam.Request{
			Owner: req.ContainerID + "/" + req.IfName, Namespace: pod.Namespace, Name: pod.Name,
			Families: intent.Families, Ranges6: intent.Ranges6, Ranges4: intent.Ranges4, Algo: intent.Algo,
		})
		if err != nil {
			if errors.Is(err, ipam.ErrExhausted) {
				a.exhausted.Add(1)
				a.rec.PodWarning(pod, "FlockPoolExhausted", err.Error())
			}
			return rpc.ErrorResponse(rpc.ErrAllocate, "cannot allocate for pod "+pod.Key(), err)
		}
		rec = store.Record{IPv6: got.IPv6, IPv4: got.IPv4, Gateway4: got.Gateway4, Created: time.Now()}
		if got.IPv6.IsValid() {
			rec.Pool6 = node.Pool6
		}
		if got.IPv4.IsValid() {
			rec.Pool4 = node.Pool4
		}
	}
	var anycast []netip.Addr
	if lim, err := a.anycastLimits(ctx, pod, node); err != nil {
		a.rec.PodWarning(pod, "FlockAnycast", fmt.Sprintf("annotation %s: %v", annotations.KeyAnycast, err))
	} else {
		var warnings []annotations.Warning
		anycast, warnings = annotations.Anycast(pod.Annotations, rec.IPv6, rec.IPv4, lim)
		for _, w := range warnings {
			a.rec.PodWarning(pod, "FlockAnycast", w.String())
		}
	}
	rec.Anycast = anycast
	rec.ContainerID, rec.IfName, rec.Netns, rec.MTU = req.ContainerID, req.IfName, req.Netns, req.MTU
	rec.Namespace, rec.Name, rec.UID = pod.Namespace, pod.Name, pod.UID
	rec.HostIface = datapath.HostIfaceName(req.ContainerID)
	if err := a.store.Save(rec); err != nil {
		if !existed {
			alloc.Release(addrs(rec)...)
		}
		return rpc.ErrorResponse(types.ErrIOFailure, "persist allocation", err)
	}
	tm.mark(&tm.ipamStore)
	if err := a.SyncGuard(ctx); err != nil {
		a.rollback(alloc, rec)
		return rpc.ErrorResponse(rpc.ErrDatapath, "apply anti-spoofing for "+pod.Key(), err)
	}
	if a.policy != nil {
		if err := a.policy.PodAdded(ctx, pod, rec.HostIface, addrs(rec)); err != nil {
			a.rollback(alloc, rec)
			return rpc.ErrorResponse(rpc.ErrDatapath, "apply NetworkPolicy for "+pod.Key(), err)
		}
	}
	tm.mark(&tm.policy)
	res, err := a.dp.Setup(attachment(rec))
	if err == nil && len(rec.Anycast) > 0 {
		if err = a.dp.SetPodAnycast(rec.Netns, rec.Anycast); err != nil {
			if terr := a.dp.Teardown(attachment(rec)); terr != nil {
				err = errors.Join(err, terr)
			}
		}
	}
	if err != nil {
		// Setup rolled back its own kernel changes; undo the allocation too.
		a.rollback(alloc, rec)
		return rpc.ErrorResponse(rpc.ErrDatapath, "set up pod network for "+pod.Key(), err)
	}
	tm.mark(&tm.netlink)
	a.pokeAnycast(len(rec.Anycast) > 0)
	a.log.Debug("add timings", tm.attrs()...)
	a.log.Info("pod added", "pod", pod.Key(), "container", req.ContainerID, "ipv6", rec.IPv6, "ipv4", rec.IPv4, "veth", rec.HostIface, "anycast", rec.Anycast)
	return &rpc.Response{Result: buildResult(rec, res)}
}

// rollback forgets an allocation that was saved but never came to life.
func (a *Agent) rollback(alloc *ipam.Allocator, rec store.Record) {
	if err := a.store.Delete(rec.Key()); err != nil {
		a.log.Error("roll back allocation", "container", rec.ContainerID, "err", err)
		return
	}
	a.releaseIfCurrent(alloc, rec)
	a.forgetGuard()
	if a.policy != nil {
		a.policy.PodDeleted(context.Background(), rec.Namespace, rec.Name)
	}
}

// releaseIfCurrent returns addresses to the allocator in use now; after a
// pool change the old allocator is gone and the new one was seeded from
// the store, which no longer has the record.
func (a *Agent) releaseIfCurrent(alloc *ipam.Allocator, r store.Record) {
	alloc.Release(addrs(r)...)
	a.mu.RLock()
	cur := a.alloc
	a.mu.RUnlock()
	if cur != nil && cur != alloc {
		cur.Release(addrs(r)...)
	}
}

func (a *Agent) del(req *rpc.Request) *rpc.Response {
	key := store.Key{ContainerID: req.ContainerID, IfName: req.IfName}
	defer a.lock(key)()
	if err := a.release(key, req.Netns); err != nil {
		return rpc.ErrorResponse(rpc.ErrDatapath, "tear down pod network", err)
	}
	return &rpc.Response{}
}

// release tears down an attachment and forgets its allocation. It succeeds
// for attachments that are gone or never existed. The caller holds the
// attachment's lock.
func (a *Agent) release(key store.Key, netns string) error {
	rec, ok := a.store.Get(key)
	if !ok {
		// Never added, or already deleted: still remove a veth a crashed
		// ADD may have left.
		rec = store.Record{ContainerID: key.ContainerID, IfName: key.IfName, HostIface: datapath.HostIfaceName(key.ContainerID)}
	}
	if netns != "" {
		rec.Netns = netns
	}
	if err := a.dp.Teardown(attachment(rec)); err != nil {
		return err
	}
	if !ok {
		return nil
	}
	if err := a.store.Delete(key); err != nil {
		return err
	}
	a.forgetGuard()
	if a.policy != nil {
		a.policy.PodDeleted(context.Background(), rec.Namespace, rec.Name)
	}
	a.pokeAnycast(len(rec.Anycast) > 0)
	a.mu.RLock()
	alloc := a.alloc
	a.mu.RUnlock()
	if alloc != nil {
		alloc.Release(addrs(rec)...)
	}
	a.syncDrains()
	a.log.Info("pod deleted", "pod", rec.Namespace+"/"+rec.Name, "container", key.ContainerID, "ipv6", rec.IPv6, "ipv4", rec.IPv4)
	return nil
}

func (a *Agent) check(req *rpc.Request) *rpc.Response {
	key := store.Key{ContainerID: req.ContainerID, IfName: req.IfName}
	defer a.lock(key)()
	rec, ok := a.store.Get(key)
	if !ok {
		return rpc.ErrorResponse(types.ErrUnknownContainer, "no allocation", fmt.Errorf("container %s interface %s", key.ContainerID, key.IfName))
	}
	if err := checkPrevResult(rec, req.PrevResult); err != nil {
		return rpc.ErrorResponse(rpc.ErrCheck, "prevResult does not match the allocation", err)
	}
	if err := a.dp.Check(attachment(rec)); err != nil {
		return rpc.ErrorResponse(rpc.ErrCheck, "pod network differs from its allocation", err)
	}
	return &rpc.Response{}
}

func (a *Agent) gc(req *rpc.Request) *rpc.Response {
	if !a.Synced() {
		// Nothing is pruned before the caches have listed; the runtime
		// calls GC again later.
		return rpc.ErrorResponse(types.ErrTryAgainLater, "garbage collection deferred",
			errors.New("the agent's pod informer has not synced yet"))
	}
	valid := map[store.Key]bool{}
	validIfaces := map[string]bool{}
	for _, v := range req.ValidAttachments {
		valid[store.Key{ContainerID: v.ContainerID, IfName: v.IfName}] = true
		validIfaces[datapath.HostIfaceName(v.ContainerID)] = true
	}
	var errs []error
	for _, r := range a.store.List() {
		if valid[r.Key()] {
			continue
		}
		unlock := a.lock(r.Key())
		err := a.release(r.Key(), "")
		unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	// Veths of attachments the store never recorded (an ADD killed between
	// creating the veth and returning) are flock's too.
	ifaces, err := a.dp.HostIfaces()
	if err != nil {
		errs = append(errs, err)
	}
	known := map[string]bool{}
	for _, r := range a.store.List() {
		known[r.HostIface] = true
	}
	for _, name := range ifaces {
		if validIfaces[name] || known[name] {
			continue
		}
		if err := a.dp.Teardown(datapath.Attachment{HostIface: name}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return rpc.ErrorResponse(rpc.ErrDatapath, "garbage collection incomplete", err)
	}
	return &rpc.Response{}
}

// pokeAnycast asks the anycast reconciler to run when the attachment
// serves anycast addresses.
func (a *Agent) pokeAnycast(serves bool) {
	if serves && a.anycastPoke != nil {
		a.anycastPoke()
	}
}
