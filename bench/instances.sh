#!/usr/bin/env bash
# keepup at N = 10, 100, 1000 instances of `sleep` (SPEC 7, issue #18):
# time to start all N detached, time of `status` and `status --json`, total
# and per-instance RSS of the keepups, idle wake-ups of all of them over
# 3 s. Writes bench/out/instances.md. Usage: bench/instances.sh [N...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KEEPUP=${KEEPUP:-$here/../target/keepup-static}
work=$(mktemp -d)
export KEEPUP_HOME=$work/state
trap '"$KEEPUP" stop "i-*" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
ns=("$@"); [ ${#ns[@]} -gt 0 ] || ns=(10 100 1000)
ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
out=$here/out/instances.md
mkdir -p "$here/out"
{
  echo "| instances | start all (detached) | status | status --json | RSS, all keepups | RSS per keepup | idle wake-ups/s, all |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
} > "$out"
for n in "${ns[@]}"; do
  t0=$(ms)
  for i in $(seq 1 "$n"); do "$KEEPUP" -d -n "i-$i" --log /dev/null -- sleep 600 >/dev/null; done
  t1=$(ms)
  "$KEEPUP" status >/dev/null
  s0=$(ms); "$KEEPUP" status >/dev/null; s1=$(ms)
  j0=$(ms); "$KEEPUP" status --json >/dev/null; j1=$(ms)
  pids=$(grep -h '^keepup_pid=' "$KEEPUP_HOME"/i-*.state | cut -d= -f2)
  rss=0; sw0=0
  for p in $pids; do
    r=$(awk '/^VmRSS:/ {print $2}' /proc/$p/status); rss=$((rss + r))
    s=$(awk '/ctxt_switches/ {s += $2} END {print s}' /proc/$p/status); sw0=$((sw0 + s))
  done
  sleep 3
  sw1=0
  for p in $pids; do s=$(awk '/ctxt_switches/ {s += $2} END {print s}' /proc/$p/status); sw1=$((sw1 + s)); done
  printf '| %d | %d ms | %d ms | %d ms | %.1f MiB | %d KB | %.1f |\n' "$n" $((t1 - t0)) $((s1 - s0)) $((j1 - j0)) \
    "$(echo "$rss / 1024" | bc -l)" $((rss / n)) "$(echo "($sw1 - $sw0) / 3" | bc -l)" >> "$out"
  "$KEEPUP" stop "i-*" >/dev/null
  "$KEEPUP" status --prune >/dev/null
done
cat "$out"
