#!/bin/sh
# Several instances composed from one shell script, PM2-style, with no daemon:
# a database-like service, then (once it is ready) a web server that needs it,
# a worker, and one that crash-loops. Shows the status table, restarts the
# worker, then stops everything with one loop.
# Usage: examples/compose.sh [path/to/keepup]
set -eu
KEEPUP=${1:-keepup}
export KEEPUP_HOME="${KEEPUP_HOME:-$(mktemp -d)/keepup}"
logs=$(mktemp -d)

# The "database" takes a second to accept connections; -d returns when it does.
"$KEEPUP" -d -n db --log "$logs/db.log" --ready-port 15432 \
  -- sh -c 'sleep 1; exec python3 -m http.server 15432 --bind 127.0.0.1'
"$KEEPUP" wait db --timeout 30s

"$KEEPUP" -d -n web --log "$logs/web.log" --ready-port 18080 \
  --health-http http://127.0.0.1:18080/ --health-interval 2s \
  -- python3 -m http.server 18080 --bind 127.0.0.1
"$KEEPUP" -d -n worker --log "$logs/worker.log" -- sh -c 'while :; do echo "worker: job done"; sleep 1; done'
"$KEEPUP" -d -n flaky --log "$logs/flaky.log" --min-uptime 5s --max-restarts unlimited --max-delay 2s \
  -- sh -c 'echo "flaky: starting"; sleep 0.3; echo "flaky: crashed" >&2; exit 1'

sleep 3
"$KEEPUP" status
echo
"$KEEPUP" restart worker
"$KEEPUP" logs flaky -n 4
echo
for name in web worker flaky db; do "$KEEPUP" stop "$name"; done
"$KEEPUP" status
"$KEEPUP" status --prune >/dev/null
rm -rf "$logs"
