// Package oracle checks flock's NetworkPolicy translation (pkg/policy)
// against kube-network-policies, a second independent evaluator next to
// cyclonus (pkg/policy's TestOracle). It is a module of its own because
// kube-network-policies requires etcd v3.7 and a newer vishvananda/netlink
// than flock's data path pins; nothing in flock imports it.
package oracle
