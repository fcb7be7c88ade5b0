#!/usr/bin/env bash
# Regenerates every generated file from the API types: the deepcopy methods
# (api/v1alpha1/zz_generated.deepcopy.go) and the CRD manifests (deploy/crd/).
# controller-gen is pinned as a `tool` in go.mod, so everyone runs one version.
# With an argument, writes into that directory (a copy of the repo) instead;
# hack/verify-generated.sh uses that.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
go tool controller-gen object paths=./api/...
# The CRD directory holds only generated files: clear it so a renamed or
# removed type leaves no stale manifest behind.
rm -f deploy/crd/*.yaml
go tool controller-gen crd paths=./api/... output:crd:dir=deploy/crd
