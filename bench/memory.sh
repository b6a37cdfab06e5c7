#!/usr/bin/env bash
# Memory-limit cost: one sample with 1..500 processes in the tree (cargo
# bench), then keepup's CPU use while it samples a 100-process tree at 1s and
# 100ms, next to PM2's daemon with max_memory_restart on the same tree.
# Usage: bench/memory.sh [SECONDS]   (default 60). Writes bench/out/memory.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
SECS=${1:-60}
out="$here/out"; mkdir -p "$out"
KEEPUP=${KEEPUP:-$root/target/release/keepup}
[ -x "$KEEPUP" ] || (cd "$root" && cargo build --release --locked -q)
"$here/install-peers.sh" logs
PM2="$out/npm/node_modules/.bin/pm2"

# CPU seconds a process has used, from the scheduler's nanosecond count
# (clock ticks are too coarse for keepup).
cpu() { awk '{ printf "%.6f", $1 / 1e9 }' "/proc/$1/schedstat"; }

tree="$out/tree.sh"
cat > "$tree" <<'T'
#!/bin/sh
i=1; while [ $i -lt 100 ]; do sleep 100000 & i=$((i+1)); done; wait
T
chmod +x "$tree"

{
  echo "### One sample"
  echo
  (cd "$root" && cargo bench --locked -q --bench memory_sample 2>/dev/null)
  echo
  echo "### CPU over ${SECS}s supervising a 100-process tree"
  echo
  echo "| supervisor | check interval | CPU time | share of one core |"
  echo "|---|---:|---:|---:|"
} > "$out/memory.md"

for interval in 1s 100ms; do
  "$KEEPUP" --quiet --max-memory 10G --memory-interval "$interval" -- "$tree" &
  kp=$!
  sleep 2
  c0=$(cpu $kp); sleep "$SECS"; c1=$(cpu $kp)
  kill -TERM $kp; wait $kp || true
  used=$(echo "$c1 - $c0" | bc)
  printf '| keepup | %s | %.3fs | %.3f%% |\n' "$interval" "$used" "$(echo "scale=6; 100 * $used / $SECS" | bc)" >> "$out/memory.md"
done

if [ -x "$PM2" ]; then
  export PM2_HOME="$out/pm2home-mem"
  "$PM2" ping >/dev/null 2>&1
  "$PM2" start "$tree" --name keepup-bench-tree --max-memory-restart 10G >/dev/null 2>&1
  god=$(cat "$PM2_HOME/pm2.pid")
  sleep 2
  c0=$(cpu "$god"); sleep "$SECS"; c1=$(cpu "$god")
  "$PM2" kill >/dev/null 2>&1 || true
  used=$(echo "$c1 - $c0" | bc)
  printf '| PM2 daemon (max_memory_restart) | 30s (its own) | %.3fs | %.3f%% |\n' "$used" "$(echo "scale=6; 100 * $used / $SECS" | bc)" >> "$out/memory.md"
fi
cat "$out/memory.md"
