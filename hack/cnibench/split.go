package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fritzlab/flock/pkg/rpc"
)

// addTiming is one "add timings" line of the agent's debug log.
type addTiming struct{ lookup, ipamStore, policy, netlink, total time.Duration }

// parseTimings reads every "add timings" line of an agent log (slog's text
// format: msg="add timings" lookup_us=… ipam_store_us=… …). A line lacking a
// key or with a value that is not an integer is an error naming both.
func parseTimings(log string) ([]addTiming, error) {
	var out []addTiming
	for n, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="add timings"`) {
			continue
		}
		kv := map[string]string{}
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				kv[k] = v
			}
		}
		var t addTiming
		for _, f := range []struct {
			key string
			dst *time.Duration
		}{{"lookup_us", &t.lookup}, {"ipam_store_us", &t.ipamStore}, {"policy_us", &t.policy}, {"netlink_us", &t.netlink}, {"total_us", &t.total}} {
			v, ok := kv[f.key]
			if !ok {
				return nil, fmt.Errorf("log line %d: no %s", n+1, f.key)
			}
			us, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("log line %d: %s=%q is not an integer", n+1, f.key, v)
			}
			*f.dst = time.Duration(us) * time.Microsecond
		}
		out = append(out, t)
	}
	return out, nil
}

// split adds and deletes count pods by calling the agent's socket directly
// (no plugin exec, no libcni) and reads the agent's timing of each ADD.
// With libcniP50, the ADD p50 through libcni, it says where the time goes:
// exec + libcni = libcni p50 - direct RPC p50, RPC = direct RPC p50 - the
// agent's handling p50, and the agent's phases.
func (im *impl) split(count int, libcniP50 time.Duration) (string, error) {
	before := len(im.node.AgentLog())
	var rtt []time.Duration
	for i, p := range im.pods[:count] {
		req := &rpc.Request{Op: rpc.OpAdd, ContainerID: p.ContainerID, Netns: p.NetNS, IfName: p.IfName,
			Args: fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-%d", i)}
		t := time.Now()
		resp, err := rpc.Call(context.Background(), im.node.Socket, req, 30*time.Second)
		rtt = append(rtt, time.Since(t))
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err != nil {
			return "", fmt.Errorf("direct ADD of %s: %w", p.ContainerID, err)
		}
	}
	for _, p := range im.pods[:count] {
		req := &rpc.Request{Op: rpc.OpDel, ContainerID: p.ContainerID, Netns: p.NetNS, IfName: p.IfName}
		resp, err := rpc.Call(context.Background(), im.node.Socket, req, 30*time.Second)
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err != nil {
			return "", fmt.Errorf("direct DEL of %s: %w", p.ContainerID, err)
		}
	}
	tims, err := parseTimings(im.node.AgentLog()[before:])
	if err != nil {
		return "", err
	}
	if len(tims) != count {
		return "", fmt.Errorf("agent logged %d add timings for %d ADDs (is it at --log-level debug?)", len(tims), count)
	}
	col := func(f func(addTiming) time.Duration) time.Duration {
		var d []time.Duration
		for _, t := range tims {
			d = append(d, f(t))
		}
		return pct(d, 50)
	}
	rpcP50, total := pct(rtt, 50), col(func(t addTiming) time.Duration { return t.total })
	return fmt.Sprintf("exec+libcni %s, rpc %s, agent %s = lookup %s + ipam+store %s + policy %s + netlink %s",
		ms(libcniP50-rpcP50), ms(rpcP50-total), ms(total),
		ms(col(func(t addTiming) time.Duration { return t.lookup })),
		ms(col(func(t addTiming) time.Duration { return t.ipamStore })),
		ms(col(func(t addTiming) time.Duration { return t.policy })),
		ms(col(func(t addTiming) time.Duration { return t.netlink }))), nil
}
