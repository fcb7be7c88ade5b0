package lab

import "strings"

// The capabilities flock's daemons run with in the lab, exactly those the
// DaemonSet (deploy/daemonset.yaml) gives their containers: the agent
// programs links, addresses, routes and nftables (NET_ADMIN), and reaches
// pod namespaces through netlink handles bound to them (setns: SYS_ADMIN);
// NET_RAW is for the raw and packet sockets of neighbour and
// link handling. BIRD exports routes to the kernel (NET_ADMIN) and listens
// on port 179 (NET_BIND_SERVICE). Everything else is dropped from the
// bounding set, so neither they nor anything they run (nft) can gain more.
var (
	AgentCapabilities = []string{"NET_ADMIN", "NET_RAW", "SYS_ADMIN"}
	BIRDCapabilities  = []string{"NET_ADMIN", "NET_BIND_SERVICE"}
)

// withCaps runs args under setpriv (util-linux) with exactly caps: the
// bounding, inheritable and ambient sets hold those and nothing else. As
// root, a process's permitted and effective sets after exec are its
// bounding set, so the daemon runs with exactly caps; the ambient set
// keeps them for a non-root one too. setpriv execs the daemon in place, so
// the pid and /proc/PID/exe are the daemon's own.
func withCaps(caps []string, args []string) []string {
	set := "-all"
	for _, c := range caps {
		set += ",+" + strings.ToLower(c)
	}
	return append([]string{"setpriv", "--bounding-set=" + set, "--inh-caps=" + set, "--ambient-caps=" + set, "--"}, args...)
}
