#!/usr/bin/env bash
# Installs the peers a benchmark compares keepup with, if missing: Debian
# packages with apt-get, PM2 from the npm registry into bench/out/npm.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pkgs=()
want() { command -v "$1" >/dev/null 2>&1 || pkgs+=("$2"); }
want bc bc
want cc gcc
case "${1:-all}" in
  logs) want ts moreutils; want s6-log s6; want svlogd runit; want multilog daemontools ;;
  *) want ts moreutils; want s6-log s6; want s6-supervise s6; want svlogd runit; want runsv runit
     want multilog daemontools; want supervise daemontools; want tini tini; want dumb-init dumb-init
     want catatonit catatonit; want supervisord supervisor; want hyperfine hyperfine; want gnuplot gnuplot-nox
     want wrk wrk ;;
esac
if [ ${#pkgs[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
if [ ! -x "$here/out/npm/node_modules/.bin/pm2" ] && command -v npm >/dev/null 2>&1; then
  mkdir -p "$here/out/npm"
  npm install --prefix "$here/out/npm" --no-audit --no-fund --loglevel=error pm2 nodemon >/dev/null || echo "bench: pm2 could not be installed; its rows are skipped" >&2
fi
