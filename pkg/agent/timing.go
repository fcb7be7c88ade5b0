package agent

import "time"

// addTimer splits one ADD into its phases for the debug log line
// "add timings" (hack/cnibench reads it to show where an ADD's time goes).
type addTimer struct {
	last                               time.Time
	lookup, ipamStore, policy, netlink time.Duration
	total                              time.Duration
}

func (t *addTimer) start() { t.last = time.Now() }

// mark charges the time since the previous mark to phase.
func (t *addTimer) mark(phase *time.Duration) {
	now := time.Now()
	*phase = now.Sub(t.last)
	t.total += *phase
	t.last = now
}

// attrs are the log line's keys, in microseconds.
func (t *addTimer) attrs() []any {
	us := func(d time.Duration) int64 { return d.Microseconds() }
	return []any{"lookup_us", us(t.lookup), "ipam_store_us", us(t.ipamStore),
		"policy_us", us(t.policy), "netlink_us", us(t.netlink), "total_us", us(t.total)}
}
