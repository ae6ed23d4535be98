# Shared by the bench scripts (sourced, not run).

# Installs wrk when missing.
ensure_wrk() {
  command -v wrk >/dev/null 2>&1 || { echo "installing wrk..."; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
}

# measure NAME WRK-ARGS... -> prints "NAME req/s R  p50 X  p99 Y" (and any errors)
measure() {
  local name=$1 out
  shift
  out=$(wrk --latency "$@")
  printf '%s %s  p50 %s  p99 %s\n' "$name" "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
  awk '/Non-2xx|Socket errors/ {print "  " $0}' <<<"$out"
}
