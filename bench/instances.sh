#!/usr/bin/env bash
# N instances of `sleep 600` (SPEC 7, issue #18) under keepup (one keepup
# each, -d), PM2 (one daemon, an ecosystem file of N apps), supervisord (one
# daemon, N [program:] sections) and s6 (s6-svscan over N service folders,
# one s6-supervise each): time to start all N, time of the status command,
# the supervisors' memory, their wake-ups and CPU over 3 s while nothing
# happens, and for keepup the CPU of all N with `--max-memory` (a sample a
# second each) over 5 s. Writes bench/out/instances.md.
#
# s6 has no status of all services: its column is one `s6-svstat` per
# service folder, as a script would run it.
#
# Memory is given twice: RSS as ps shows it, and PSS, what the supervisors
# really cost together (N keepups share the binary's pages in the page cache;
# RSS counts them N times, PSS once).
#
# Usage: bench/instances.sh [N...]   (default 10 100 1000)
#        PEERS=0 bench/instances.sh  keepup only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KEEPUP=${KEEPUP:-$here/../target/keepup-static}
PM2=$here/out/npm/node_modules/.bin/pm2
work=$(mktemp -d)
export KEEPUP_HOME=$work/state
export PM2_HOME=$work/pm2
cleanup() {
  "$KEEPUP" stop "i-*" >/dev/null 2>&1 || true
  [ -x "$PM2" ] && "$PM2" kill >/dev/null 2>&1 || true
  [ -f "$work/sd/pid" ] && kill "$(cat "$work/sd/pid")" 2>/dev/null || true
  [ -d "$work/s6" ] && { s6-svscanctl -t "$work/s6" 2>/dev/null || true; pkill -f 'sleep 601' 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
ns=("$@"); [ ${#ns[@]} -gt 0 ] || ns=(10 100 1000)
peers=${PEERS:-1}
ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/$3" 2>/dev/null || echo 0; }
switches() { awk '/ctxt_switches/ {s += $2} END {print s + 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
# CPU time used so far, in ns (the scheduler's own count: a tick-based
# utime rounds a keepup's few µs a second down to nothing).
cpu_ns() { cut -d' ' -f1 "/proc/$1/schedstat" 2>/dev/null || echo 0; }
# Until $1 (a command) prints $2 lines matching $3, or 120 s.
wait_count() {
  local deadline=$((SECONDS + 120))
  while [ "$($1 2>/dev/null | grep -c "$3" || true)" -lt "$2" ]; do
    [ $SECONDS -lt $deadline ] || { echo "bench: timed out waiting for $2 x '$3'" >&2; return 1; }
    sleep 0.05
  done
}
out=$here/out/instances.md
mkdir -p "$here/out"
{
  echo "| supervisor | instances | start all | status | status --json | RSS, all | RSS per instance | PSS, all | PSS per instance | wake-ups/s, all | CPU idle, all | CPU with --max-memory, all |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} > "$out"
# row NAME N START_MS STATUS_MS JSON_MS SAMPLING PIDS...
row() {
  local name=$1 n=$2 start=$3 status=$4 json=$5 sampling=$6; shift 6
  local rss=0 pss=0 sw0=0 sw1=0 c0=0 c1=0 p
  for p in "$@"; do
    rss=$((rss + $(kb "$p" VmRSS status))); pss=$((pss + $(kb "$p" Pss smaps_rollup)))
    sw0=$((sw0 + $(switches "$p"))); c0=$((c0 + $(cpu_ns "$p")))
  done
  sleep 3
  for p in "$@"; do sw1=$((sw1 + $(switches "$p"))); c1=$((c1 + $(cpu_ns "$p"))); done
  printf '| %s | %d | %d ms | %s | %s | %.1f MiB | %d KB | %.1f MiB | %d KB | %.1f | %.3f%% | %s |\n' "$name" "$n" "$start" "$status" "$json" \
    "$(echo "$rss / 1024" | bc -l)" $((rss / n)) "$(echo "$pss / 1024" | bc -l)" $((pss / n)) \
    "$(echo "($sw1 - $sw0) / 3" | bc -l)" "$(echo "($c1 - $c0) / 30000000" | bc -l)" "$sampling" | tee -a "$out"
}

# sampling N: the CPU of N keepups with --max-memory over 5 s, as a share of one core.
sampling() {
  local n=$1 i c0=0 c1=0 p pids
  for i in $(seq 1 "$n"); do "$KEEPUP" -d -n "m-$i" --log /dev/null --max-memory 1G -- sleep 600 >/dev/null; done
  pids=$(grep -h '^keepup_pid=' "$KEEPUP_HOME"/m-*.state | cut -d= -f2)
  sleep 2 # past the first samples
  for p in $pids; do c0=$((c0 + $(cpu_ns "$p"))); done
  sleep 5
  for p in $pids; do c1=$((c1 + $(cpu_ns "$p"))); done
  "$KEEPUP" stop "m-*" >/dev/null
  "$KEEPUP" status --prune >/dev/null
  printf '%.2f%%' "$(echo "($c1 - $c0) / 50000000" | bc -l)"
}

for n in "${ns[@]}"; do
  # keepup: one per instance, each started detached (it returns once the
  # child runs), as a shell script or npm script would. First the same N
  # with --max-memory, for the CPU of memory sampling alone.
  keepup_sampling=$(sampling "$n")
  t0=$(ms)
  for i in $(seq 1 "$n"); do "$KEEPUP" -d -n "i-$i" --log /dev/null -- sleep 600 >/dev/null; done
  t1=$(ms)
  "$KEEPUP" status >/dev/null
  s0=$(ms); "$KEEPUP" status >/dev/null; s1=$(ms)
  j0=$(ms); "$KEEPUP" status --json >/dev/null; j1=$(ms)
  # shellcheck disable=SC2046
  row "keepup" "$n" $((t1 - t0)) "$((s1 - s0)) ms" "$((j1 - j0)) ms" "$keepup_sampling" \
    $(grep -h '^keepup_pid=' "$KEEPUP_HOME"/i-*.state | cut -d= -f2)
  "$KEEPUP" stop "i-*" >/dev/null
  "$KEEPUP" status --prune >/dev/null

  [ "$peers" = 1 ] || continue

  if [ -x "$PM2" ]; then
    {
      echo "module.exports = { apps: ["
      for i in $(seq 1 "$n"); do
        echo "  { name: 'i-$i', script: 'sleep', args: '600', interpreter: 'none', autorestart: true },"
      done
      echo "] };"
    } > "$work/ecosystem.config.js"
    "$PM2" ping >/dev/null 2>&1 # the daemon's own start is not part of starting N apps
    t0=$(ms)
    "$PM2" start "$work/ecosystem.config.js" >/dev/null 2>&1
    wait_count "pgrep -x sleep -P $(cat "$PM2_HOME/pm2.pid")" "$n" '' || true
    t1=$(ms)
    s0=$(ms); "$PM2" jlist >/dev/null; s1=$(ms)
    row "PM2 $("$PM2" -v 2>/dev/null | tail -1)" "$n" $((t1 - t0)) "$((s1 - s0)) ms (jlist)" - - "$(cat "$PM2_HOME/pm2.pid")"
    "$PM2" kill >/dev/null 2>&1
  else
    echo "bench: no PM2 in $here/out/npm (bench/run installs it); PM2 left out" >&2
  fi

  if command -v supervisord >/dev/null; then
    mkdir -p "$work/sd"
    {
      printf '[supervisord]\nnodaemon=true\nlogfile=%s/sd/log\npidfile=%s/sd/pid\n' "$work" "$work"
      printf '[unix_http_server]\nfile=%s/sd/sock\n' "$work"
      printf '[supervisorctl]\nserverurl=unix://%s/sd/sock\n' "$work"
      printf '[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n'
      for i in $(seq 1 "$n"); do
        printf '[program:i-%d]\ncommand=sleep 600\nstartsecs=0\nautorestart=true\nstdout_logfile=NONE\nstderr_logfile=NONE\n' "$i"
      done
    } > "$work/sd/conf"
    ctl="supervisorctl -c $work/sd/conf status"
    t0=$(ms)
    supervisord -c "$work/sd/conf" >/dev/null 2>&1 &
    sd=$!
    wait_count "$ctl" "$n" RUNNING || true
    t1=$(ms)
    s0=$(ms); $ctl >/dev/null || true; s1=$(ms)
    row "supervisord $(supervisord -v)" "$n" $((t1 - t0)) "$((s1 - s0)) ms" - - "$sd"
    kill "$sd"; wait "$sd" 2>/dev/null || true
    rm -rf "$work/sd"
  else
    echo "bench: no supervisord (apt-get install supervisor); left out" >&2
  fi
  if command -v s6-svscan >/dev/null; then
    mkdir -p "$work/s6"
    for i in $(seq 1 "$n"); do
      mkdir "$work/s6/i-$i"
      printf '#!/bin/sh\nexec sleep 601\n' > "$work/s6/i-$i/run"
      chmod +x "$work/s6/i-$i/run"
    done
    t0=$(ms)
    # s6-svscan supervises 500 services unless told more (-c).
    s6-svscan -c $((n + 16)) "$work/s6" >/dev/null 2>&1 &
    scan=$!
    wait_count "pgrep -af sleep.601" "$n" 'sleep 601' || true
    t1=$(ms)
    s0=$(ms); for d in "$work"/s6/i-*; do s6-svstat "$d"; done >/dev/null; s1=$(ms)
    # shellcheck disable=SC2046
    row "s6-svscan + s6-supervise ($(dpkg-query -W -f '${Version}' s6 2>/dev/null || echo s6))" "$n" $((t1 - t0)) \
      "$((s1 - s0)) ms ($n s6-svstat)" - - "$scan" $(pgrep -P "$scan" -x s6-supervise)
    s6-svscanctl -t "$work/s6" 2>/dev/null || kill "$scan"
    wait "$scan" 2>/dev/null || true
    pkill -f 'sleep 601' 2>/dev/null || true
    rm -rf "$work/s6"
  else
    echo "bench: no s6 (apt-get install s6); left out" >&2
  fi
done
cat "$out"
