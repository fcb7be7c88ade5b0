# flock — make targets. `make test` is what CI runs (as root: the kernel
# and end-to-end tests need network namespaces).
GO ?= go
FUZZTIME ?= 3s

.PHONY: all lab lab-real lab-lite build test unit vet fuzz bench bench-cni bench-bgp bench-anycast demo clean generate verify-generated

all: build

build:
	$(GO) build -o bin/ ./cmd/...

# test/oracle is a module of its own (kube-network-policies' dependencies
# do not fit this one's): ./... stops at it, so it is vetted and tested apart.
vet:
	$(GO) vet ./...
	cd test/oracle && $(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# Generated files up to date, unit, kernel and end-to-end tests (lab
# included), the kube-network-policies oracle (test/oracle), then every fuzz
# target of both modules briefly.
test: vet verify-generated
	$(GO) test -race -count=1 -timeout 45m ./...
	cd test/oracle && $(GO) test -race -count=1 ./...
	$(MAKE) fuzz

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test/)

fuzz:
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh

bench: bench-cni
	$(GO) test -run='^$$' -bench=. -benchmem ./pkg/...

# 100 pods at once on one real-runtime node (kubelet, containerd): to all
# Ready and to all gone, flock against ptp + host-local in the same run.
.PHONY: bench-pods
bench-pods:
	$(GO) run ./hack/podbench

# ADD/DEL latency of flock against ptp + host-local, measured in one run.
bench-cni:
	$(GO) run ./hack/cnibench

# A 2-node lab (real kube-apiserver; per node the agent, BIRD, containerd,
# kubelet and kube-proxy) with demo pods, their addresses and a cross-node
# reachability check. `flock-lab down` removes it.
lab:
	$(GO) build -o bin/ ./cmd/flock-lab ./cmd/flockctl
	bin/flock-lab up --nodes 2
	bin/flock-lab demo

# `make lab` (kept: the real node stack is the default now).
lab-real: lab

# The same lab on kubelet-lite and the lab's Service proxy stand-in (host
# processes instead of containers).
lab-lite:
	$(GO) build -o bin/ ./cmd/flock-lab ./cmd/flockctl
	bin/flock-lab up --nodes 2 --runtime=lite
	bin/flock-lab demo

# Time from a NodeConfig pool change to the prefix in the router's kernel,
# and BIRD reloads per 100 NodeConfig updates, in a lab of its own.
bench-bgp:
	$(GO) run ./hack/bgpbench

# Ready -> NotReady -> Ready flips of an anycast pod, timed to the router.
bench-anycast:
	$(GO) run ./hack/anycastbench

# Ready -> NotReady -> Ready flips of a LoadBalancer Service's only local
# backend (externalTrafficPolicy Local), from the EndpointSlice change to
# the router, on the real node stack.
.PHONY: bench-lb
bench-lb:
	$(GO) run ./hack/lbbench

# The smallest real demonstration: a node namespace with the agent, two pods
# added through the real plugin, pinging each other over IPv6 and IPv4.
demo:
	$(GO) run ./hack/demo

clean:
	rm -rf bin

# Deepcopy methods and CRD manifests from the API types (controller-gen).
generate:
	hack/generate.sh

# Fails, naming the files, when the committed generated files are stale.
verify-generated:
	hack/verify-generated.sh

# NetworkPolicy at 1000 pods (200 on the node) and 1000 policies: a full
# sync, one pod ADD covered, and TCP connections/s between two local pods
# with every policy in place against none, in one run; the same load and
# data path with knftables and with iptables-nft linear chains beside it.
.PHONY: bench-netpol
bench-netpol:
	$(GO) run ./hack/netpolbench

# The agent on one node at 0, 100 and 250 pods with NetworkPolicy on and 200
# policies: ADD latency, RSS, CPU, idle CPU, anycast and policy reconcile.
.PHONY: bench-agent bench-scale
bench-agent:
	$(GO) run ./hack/scalebench -cluster=false

# bench-agent's node, then 1000 Nodes + NodeConfigs x 30 pods and 2000
# policies in the API server: the agent's RSS, a full apply, pod churn
# elsewhere; then 50 BIRD sessions at the lab router.
bench-scale:
	$(GO) run ./hack/scalebench

# Fault injection in a lab of its own: agent kills during a pod storm, BIRD
# killed, the API gone, a corrupt store, a pool change, pool exhaustion and
# an uplink flap, under continuous traffic, each followed by a leak audit.
# One line per scenario, last `chaos_scenarios=… failed=… leaked=…
# lost_pings=… duplicate_addresses=…`. CHAOS=ci runs the CI sample (fewer
# repetitions; `make test` runs it as test/lab's TestChaos).
.PHONY: chaos
chaos:
	$(GO) run ./hack/chaos
