#!/bin/sh
# keepup on a real example: a small app that handles a few requests and then
# crashes, as an app that loses its database does. keepup restarts it with exponential
# backoff, marks the quick crashes unstable, and gives up after 3 of them.
set -eu
KEEPUP=${1:-keepup}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/app.sh" <<'APP'
echo "app: listening (pid $$)"
i=0
while [ $i -lt 3 ]; do i=$((i+1)); echo "app: handled request $i"; sleep 0.1; done
echo "app: Error: connection to database lost" >&2
exit 1
APP
echo "\$ keepup --name demo --log $dir/demo.log --delay 200ms --min-uptime 2s --max-restarts 3 -- sh app.sh"
status=0
"$KEEPUP" --name demo --log "$dir/demo.log" --delay 200ms --min-uptime 2s --max-restarts 3 \
  -- sh "$dir/app.sh" || status=$?
echo
echo "keepup exited with status $status (the app's last exit code)"
echo
echo "--- $dir/demo.log"
cat "$dir/demo.log"
