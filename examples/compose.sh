#!/bin/sh
# Three instances composed from one shell script, PM2-style, with no daemon:
# a web server, a worker, and one that crash-loops. Shows the status table,
# restarts the worker, then stops everything with one loop.
# Usage: examples/compose.sh [path/to/keepup]
set -eu
KEEPUP=${1:-keepup}
export KEEPUP_HOME="${KEEPUP_HOME:-$(mktemp -d)/keepup}"
logs=$(mktemp -d)
here=$(cd "$(dirname "$0")" && pwd)

"$KEEPUP" -d -n web --log "$logs/web.log" -- python3 -m http.server 18080 --bind 127.0.0.1
"$KEEPUP" -d -n worker --log "$logs/worker.log" -- sh -c 'while :; do echo "worker: job done"; sleep 1; done'
"$KEEPUP" -d -n flaky --log "$logs/flaky.log" --min-uptime 5s --max-restarts unlimited --max-delay 2s \
  -- sh -c 'echo "flaky: starting"; sleep 0.3; echo "flaky: crashed" >&2; exit 1'

sleep 2
"$KEEPUP" status
echo
"$KEEPUP" restart worker
"$KEEPUP" logs flaky -n 4
echo
for name in web worker flaky; do "$KEEPUP" stop "$name"; done
"$KEEPUP" status
"$KEEPUP" status --prune >/dev/null
rm -rf "$logs"
