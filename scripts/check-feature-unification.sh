#!/usr/bin/env bash
# scripts/check-feature-unification.sh — fail when `cargo build -p cinema-host` (make up,
# bench/*.sh) would compile a dependency with other features than `cargo test
# --workspace` (make test), i.e. when crates/workspace-hack/Cargo.toml falls behind.
#
# Cargo resolves features per selection of packages: every (package, features) unit of
# the host's own build must also be a unit of the workspace build, or switching between
# the two recompiles it and everything above it. Prints the units to add to the list.
set -euo pipefail
cd "$(dirname "$0")/.."

# One line per compiled unit: "name version [features]"; workspace members left out.
units() {
  local tree
  if ! tree=$(cargo tree --locked --prefix none -f '{p} [{f}]' "$@" 2>&1); then
    echo "check-feature-unification: cargo tree $* failed:" >&2
    echo "$tree" >&2
    return 2
  fi
  echo "$tree" |
    sed 's/ (\*)$//; s/ (proc-macro)//; s/ (\/[^)]*)//' |
    awk '$2 ~ /^v[0-9]/' | grep -v '^\(cinema-\|hello \|auth \|catalog \|ugc \|admin \|docs \|fixture-\)' | sort -u
}

host=$(mktemp) workspace=$(mktemp)
trap 'rm -f "$host" "$workspace"' EXIT
units -p cinema-host -e normal,build > "$host" || exit 2
units --workspace -e normal,build,dev > "$workspace" || exit 2
missing=$(comm -23 "$host" "$workspace")
if [ -n "$missing" ]; then
  echo "check-feature-unification: a host-only build compiles these dependencies with other" >&2
  echo "features than the workspace test build; add the workspace's features for them to" >&2
  echo "crates/workspace-hack/Cargo.toml (compare with: cargo tree --workspace -e features -i NAME):" >&2
  echo "$missing" >&2
  exit 1
fi
echo "check-feature-unification: the host's build shares every dependency unit with the workspace's"
