// Package policy enforces Kubernetes NetworkPolicy (networking.k8s.io/v1)
// with nftables. Translate (pure) computes what each local pod may receive
// and send; Render (pure) writes that as one nftables table of flock's own,
// `table inet flock`; Applier loads it atomically with the nft binary, skips
// unchanged models and repairs drift.
//
// # Semantics
//
// Those of the API as the upstream e2e suite and the independent evaluators
// (cyclonus, kube-network-policies) read them: policyTypes defaulted as the
// API server does, an empty rule list denies, stacked policies are a union,
// a pod no policy selects is unrestricted in that direction, named ports are
// resolved on the destination pod (for egress: on each peer pod), label
// selectors are labels.Selector's (NotIn matches a missing key). Where the
// API leaves room:
//   - an ipBlock matches any address inside it, pod addresses included;
//   - traffic from the node itself to its pods is never filtered (kubelet
//     probes): it leaves through the output hook, where flock has no chain;
//   - a pod reaching itself is never filtered, through its own loopback or
//     through its Service (hairpin: out of its veth and, DNATed, back in;
//     kube-proxy masquerades such traffic, so the pod would see its node);
//   - traffic from a pod to the node itself (the input hook) is egress like
//     any other: a node address is matched by an ipBlock or a rule without
//     peers, never by a pod or namespace selector;
//   - a rule that lists ports allows only TCP, UDP and SCTP; a rule without
//     ports allows every protocol, ICMP included;
//   - the ICMP errors path MTU discovery needs and IPv6 neighbour and router
//     discovery are always allowed, and so are replies (conntrack
//     established/related); packets conntrack finds invalid are dropped
//     for pods under a policy, and only for them.
//
// # Ruleset
//
// Pods are told apart by their host veth only (iifname, oifname), so
// anycast and Service traffic are covered; the forward hook runs after
// Service DNAT.
//
//	chain forward (hook forward, priority filter, policy accept)
//	    ct state established,related accept
//	    icmpv6 type { PMTU, errors, ND, RS/RA } accept; icmp type { errors } accept
//	    iifname . oifname @hairpin accept (a restricted pod's veth . the same veth)
//	    iifname vmap @egress_by_iface    -> jump egress_<hash>  (returns when allowed)
//	    oifname vmap @ingress_by_iface   -> jump ingress_<hash> (accepts when allowed)
//	chain input (hook input): the same, with the egress map only
//	chain ingress_<hash>:
//	    ct state invalid drop
//	    ip6 saddr @..._any6 accept                                 (peers on every port)
//	    ip6 saddr . meta l4proto . th dport @..._ports6 accept     (peer . proto . ports)
//	    ip saddr @..._any4 accept; ip saddr . ... @..._ports4 accept
//	    drop
//
// An allow-list that allows nothing is a drop in the map, one that allows
// everything no entry at all. Allow-list chains are named after a hash of
// their content, so pods with equal allow-lists (replicas) share one chain
// and its sets. A packet meets at most 6 base-chain rules, 2 map lookups and
// 6 rules of one allow-list chain, each rule one set lookup, however many
// policies and pods there are.
//
// # Anti-spoofing
//
// A pod may send only from its own eth0 addresses and the anycast
// addresses it was granted. RenderGuard writes a second table of flock's,
// `table inet flock_guard`, and Guard loads it:
//
//	chain prerouting (hook prerouting, priority raw, policy accept)
//	    iifname != "flock*" accept                      (not from a pod)
//	    iifname . ip6 saddr @sources6 accept            (veth . own address)
//	    iifname . ip saddr @sources4 accept
//	    ip6 saddr fe80::/10 accept                      (NDP, MLD: link-local)
//	    ip6 saddr :: ip6 daddr ff02::/16 accept         (DAD)
//	    counter name spoofed drop
//
// It is nftables and not strict rp_filter because rp_filter exists for
// IPv4 only, and a reverse-path check (rp_filter, or nft's fib) would drop
// an anycast reply whenever the pod's anycast route is missing (pod not
// Ready, or another local pod's next hop chosen), while allowing a pod any
// address routed via its veth; a set keyed by (veth, address) is exact for
// both families. It is a table of its own, not part of `inet flock`,
// because it is on in every mode (file mode and --netpol=false too: it
// needs nothing of Kubernetes, and an operator expects it always), and
// because it is never deleted on reload, so the counter keeps counting:
// the script declares every object, then flushes and refills the sets and
// the chain in the same transaction. Priority raw puts it before conntrack,
// so a forged packet never creates a connection-tracking entry, and before
// Service DNAT and NetworkPolicy. ARP is not IP and never reaches it; a
// pod's hairpin through its own Service keeps its own source. The agent
// loads a new pod's sources before the veth exists, so the first packet
// of a pod passes and an unknown veth's packets are dropped.
//
// # Why nft -f and not knftables
//
// sigs.k8s.io/knftables (kube-proxy's library) was tried in full, on a
// branch: it drives the same nft binary with the same one-transaction
// model, but it writes one `add element` command per set element, which
// made the full load at 1000 policies (make bench-netpol) about twice as
// slow, 617 ms against 324 ms measured back to back, and it lists rules
// without their text, so drift repair could no longer compare the
// kernel's rules with the loaded ones. Render writes the same transaction
// text itself (declarative blocks, elements inline), every golden is
// checked by the real `nft --check`, and names and comments that reach
// the script are validated or sanitised first.
//
// # Applying
//
// Applier.Apply replaces the whole table in one nft transaction (a few
// hundred milliseconds at a thousand policies). Applier.Add is the CNI ADD
// fast path: it puts a new pod's map entries, and its allow-list chain when
// no loaded pod shares it, into the loaded table in one small transaction,
// so the pod is covered before its veth exists; the next Apply brings the
// other pods' rules up to date with the new pod's addresses.
package policy
