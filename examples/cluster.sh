#!/usr/bin/env bash
# A two-instance cluster on one port, with no master process, and a rolling
# reload under load: every request is answered, none refused or reset.
#
#   examples/cluster.sh [path/to/keepup]     (default: target/release/keepup)
#
# Needs node. The preload comes from this checkout (npm/keepup-cli), found
# through NODE_PATH as it would be in node_modules.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
keepup=$(realpath "${1:-$here/target/release/keepup}")
work=$(mktemp -d)
export KEEPUP_HOME=$work/state
mkdir -p "$work/modules"
ln -s "$here/npm/keepup-cli" "$work/modules/keepup-cli"
export NODE_PATH=$work/modules
port=$((20000 + RANDOM % 20000))
trap '"$keepup" stop "api-*" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

cat > "$work/app.js" <<'JS'
const http = require('http');
const server = http
  .createServer((req, res) => res.end(`pid ${process.pid} (${process.env.KEEPUP_INSTANCE_NAME})\n`))
  .listen(Number(process.env.PORT), () => console.log('listening'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
JS
cat > "$work/load.js" <<'JS'
// Keeps 8 connections busy for the given seconds; counts answers per pid
// and every error.
const http = require('http');
const [port, seconds] = process.argv.slice(2).map(Number);
const until = Date.now() + seconds * 1000;
const pids = {};
let ok = 0, errors = 0;
function one() {
  if (Date.now() > until) return;
  http.get({ host: '127.0.0.1', port, agent: false }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => { ok++; pids[body.trim()] = (pids[body.trim()] || 0) + 1; one(); });
  }).on('error', (e) => { errors++; console.error('error:', e.message); one(); });
}
for (let i = 0; i < 8; i++) one();
process.on('exit', () => {
  console.log(`load: ${ok} answers, ${errors} errors`);
  for (const [p, n] of Object.entries(pids)) console.log(`  ${n}\t${p}`);
});
JS

cd "$work"
PORT=$port "$keepup" -d -i 2 -n api --listen "$port" --log "$work/api.log" \
  -- node -r keepup-cli/listen app.js
"$keepup" status
node load.js "$port" 4 &
load=$!
sleep 1
"$keepup" reload 'api-*'
sleep 1
"$keepup" reload 'api-*'
wait "$load"
"$keepup" status
