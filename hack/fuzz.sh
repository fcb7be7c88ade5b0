#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME each (default 3s), in the main module
# and in the nested modules that `go list ./...` from the root does not
# reach (test/oracle).
#
# Long-run mode: with a FUZZTIME other than the default (FUZZTIME=5m make
# fuzz), or FUZZ_SEEDS=1, every input the fuzzer added to its corpus during
# this run (in $(go env GOCACHE)/fuzz) is copied into the package's
# testdata/fuzz/<Target>/, where `go test` runs it as a regression seed from
# then on; commit the new files. A failing input lands there anyway (go test
# writes it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fuzztime=${FUZZTIME:-3s}
seeds=${FUZZ_SEEDS:-}
if [ -z "$seeds" ] && [ "$fuzztime" != 3s ]; then seeds=1; fi
cache=$(go env GOCACHE)/fuzz
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
# Minimizing each new interesting input is capped at 10 runs: uncapped, the
# slower targets spent their whole -fuzztime shrinking, not fuzzing.
n=0
kept=0
for mod in . test/oracle; do
  cd "$root/$mod"
  for pkg in $(go list ./...); do
    dir=$(go list -f '{{.Dir}}' "$pkg")
    for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
      echo "fuzz $pkg $target ($fuzztime)"
      if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=10x "$pkg" >/tmp/flock-fuzz.log 2>&1; then
        # Go's fuzz coordinator sometimes reports "context deadline exceeded"
        # when -fuzztime ends while a worker is busy, with no failing input;
        # a real failure names one (testdata/fuzz/...). Retry that case once.
        if grep -q "context deadline exceeded" /tmp/flock-fuzz.log && ! grep -q "testdata/fuzz/" /tmp/flock-fuzz.log; then
          echo "  (fuzz harness timed out without a failing input; retrying)"
          go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=10x "$pkg" >/tmp/flock-fuzz.log 2>&1 || { cat /tmp/flock-fuzz.log; exit 1; }
        else
          cat /tmp/flock-fuzz.log; exit 1
        fi
      fi
      n=$((n+1))
      if [ "$seeds" = 1 ] && [ -d "$cache/$pkg/$target" ]; then
        mkdir -p "$dir/testdata/fuzz/$target"
        while IFS= read -r f; do
          if [ ! -e "$dir/testdata/fuzz/$target/$(basename "$f")" ]; then
            cp "$f" "$dir/testdata/fuzz/$target/"
            kept=$((kept+1))
          fi
        done < <(find "$cache/$pkg/$target" -type f -newer "$stamp")
      fi
    done
  done
done
if [ "$seeds" = 1 ]; then
  echo "fuzz: $kept new corpus entries kept as regression seeds under testdata/fuzz/ (commit them)"
fi
echo "fuzz: $n passed, 0 failed"
