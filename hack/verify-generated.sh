#!/usr/bin/env bash
# Fails, naming the stale files, when the committed generated files (deepcopy
# and CRD manifests) differ from what hack/generate.sh makes of the current
# API types. The work tree is left untouched: generation runs in a copy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Only what generation reads and writes: the module files, the API packages,
# the CRD directory and the generator script.
mkdir -p "$tmp/deploy" "$tmp/hack"
cp -a "$root/go.mod" "$root/go.sum" "$root/api" "$tmp/"
cp -a "$root/hack/generate.sh" "$tmp/hack/"
if [ -d "$root/deploy/crd" ]; then cp -a "$root/deploy/crd" "$tmp/deploy/"; fi
"$tmp/hack/generate.sh" "$tmp" >/dev/null

generated() { # the generated files under a tree, relative to it
  (cd "$1" && find api -name 'zz_generated.*.go'; find deploy/crd -name '*.yaml' 2>/dev/null) | sort
}
stale=()
while read -r f; do
  if [ ! -e "$root/$f" ] || ! cmp -s "$root/$f" "$tmp/$f"; then stale+=("$f"); fi
done < <(generated "$tmp")
while read -r f; do # committed but no longer generated
  [ -e "$tmp/$f" ] || stale+=("$f")
done < <(generated "$root")

if [ ${#stale[@]} -gt 0 ]; then
  echo "generated files are stale; run hack/generate.sh (or make generate):" >&2
  for f in "${stale[@]}"; do
    echo "  $f" >&2
    diff -u "$root/$f" "$tmp/$f" 2>/dev/null | head -20 >&2 || true
  done
  exit 1
fi
echo "generated files are up to date"
