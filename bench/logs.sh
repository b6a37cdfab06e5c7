#!/usr/bin/env bash
# Log throughput, side by side: a fast generator writes N lines of 80 bytes
# through each logger; we time it and count the lines that arrived intact.
# Usage: bench/logs.sh [N]   (default 2000000). Writes bench/out/logs.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
N=${1:-2000000}
out="$here/out"
work="$out/logs-work"
mkdir -p "$out"
rm -rf "$work"; mkdir -p "$work"
KEEPUP=${KEEPUP:-$root/target/release/keepup}
[ -x "$KEEPUP" ] || (cd "$root" && cargo build --release --locked -q)

"$here/install-peers.sh" logs
cc -O2 -o "$out/gen" "$here/gen.c"
GEN="$out/gen"
PM2="$out/npm/node_modules/.bin/pm2"

now() { date +%s.%N; }
# Lines that arrived whole: the generator's exact line, whatever prefix
# (and, in JSON, the closing of its "msg" string).
intact() { (cd "$work" && eval "cat $* 2>/dev/null") | grep -c -E 'line [0-9]{10} x{63}("})?$' || true; }

# run NAME SETUP CMD FILES...: times CMD (after SETUP), up to 5 runs, median.
declare -a rows
run() {
  local name=$1 setup=$2 cmd=$3; shift 3
  local times=() got=0 i
  for i in 1 2 3 4 5; do
    (cd "$work" && eval "$setup")
    local s e
    s=$(now)
    (cd "$work" && eval "$cmd") >/dev/null 2>&1
    e=$(now)
    times+=("$(echo "$e - $s" | bc)")
    got=$(intact "$@")
    # Slow peers get one run: the bench must stay within minutes.
    if [ "$(echo "${times[-1]} > 5" | bc)" = 1 ]; then break; fi
  done
  local med
  med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  rows+=("$name;$med;$got")
  printf '%-28s %8.3fs  %d lines\n' "$name" "$med" "$got" >&2
}

run "gen > file" "rm -f f" "$GEN $N > f" f
run "gen | cat > file" "rm -f f" "$GEN $N | cat > f" f
run "keepup --log FILE --quiet" "rm -f k*" "$KEEPUP --log k --quiet --log-max-size 0 --restart never -- $GEN $N" k
run "keepup --log-format json" "rm -f kj*" "$KEEPUP --log kj --log-format json --quiet --log-max-size 0 --restart never -- $GEN $N" kj
run "ts (moreutils)" "rm -f t" "$GEN $N | ts '%Y-%m-%dT%H:%M:%.S' > t" t
run "s6-log t" "rm -rf s6" "$GEN $N | s6-log n100 s100000000 t ./s6" 's6/current s6/@*'
run "svlogd -tt" "rm -rf sv; mkdir sv; printf 's0\nn100\n' > sv/config" "$GEN $N | svlogd -tt sv" 'sv/current sv/@*'
run "multilog t" "rm -rf ml" "$GEN $N | multilog t s16777215 n100 ./ml" 'ml/current ml/@*'

if [ -x "$PM2" ]; then
  export PM2_HOME="$work/pm2home"
  pm2_run() {
    rm -f "$work/pm2.log"
    "$PM2" start "$GEN" --name keepup-bench-gen --no-autorestart \
      --log-date-format "YYYY-MM-DDTHH:mm:ss.SSS" -o "$work/pm2.log" -e "$work/pm2.err" -- "$N" >/dev/null 2>&1
    # PM2 returns before the app runs: wait until the log stops growing.
    local prev=-1 cur
    for _ in $(seq 1 480); do
      cur=$(stat -c %s "$work/pm2.log" 2>/dev/null || echo 0)
      [ "$cur" = "$prev" ] && [ "$cur" != 0 ] && break
      prev=$cur; sleep 0.25
    done
    "$PM2" delete keepup-bench-gen >/dev/null 2>&1 || true
  }
  "$PM2" ping >/dev/null 2>&1
  s=$(now); pm2_run; e=$(now)
  t=$(echo "$e - $s - 0.25" | bc)
  got=$(intact "$work/pm2.log")
  rows+=("PM2 (log_date_format);$t;$got")
  printf '%-28s %8.3fs  %d lines\n' "PM2" "$t" "$got" >&2
  "$PM2" kill >/dev/null 2>&1 || true
fi

limit=$(echo "${rows[1]}" | cut -d';' -f2)
{
  echo "| logger | time | lines/s | x of \`gen \| cat > file\` | lines lost |"
  echo "|---|---:|---:|---:|---:|"
  for r in "${rows[@]}"; do
    IFS=';' read -r name t got <<<"$r"
    rate=$(echo "$N / $t" | bc)
    ratio=$(echo "scale=3; $t / $limit" | bc)
    printf '| %s | %.3fs | %s | %.2fx | %s |\n' "${name//|/\\|}" "$t" "$rate" "$ratio" "$((N - got))"
  done
} > "$out/logs.md"
cat "$out/logs.md"
rm -rf "$work"
