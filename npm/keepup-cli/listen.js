// keepup-cli/listen: run an unchanged Node server on the sockets keepup
// holds for it (`keepup --listen 3000 -- node -r keepup-cli/listen app.js`).
//
// keepup binds the address once and passes it to every run as fd 3, 4, ...
// (the systemd socket-activation protocol: LISTEN_FDS, LISTEN_PID,
// LISTEN_FDNAMES). This preload makes `server.listen(PORT)` of any
// net.Server (http, https, express, fastify, koa; CommonJS or ESM) take the
// inherited socket whose port is PORT, and `listen(PATH)` the inherited
// Unix socket at PATH, instead of binding a new one: so a restart or a
// reload never refuses a connection. Other listen calls are left alone.
// It removes LISTEN_* from process.env, so the app's own children do not
// take the sockets for theirs. Linux only (it reads /proc), like keepup.
'use strict';

const fs = require('fs');
const net = require('net');

const FIRST_FD = 3;

// The socket inode behind one of our descriptors, from its /proc link
// ("socket:[12345]").
function inodeOf(fd) {
  try {
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
    return m ? m[1] : null;
  } catch (e) {
    return null;
  }
}

// inode -> local port, for listening TCP sockets (/proc/net/tcp and tcp6:
// "sl local_address rem_address st ... uid timeout inode").
function tcpPorts() {
  const ports = new Map();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue; // 0A: LISTEN
      ports.set(f[9], parseInt(f[1].split(':').pop(), 16));
    }
  }
  return ports;
}

// inode -> path, for Unix sockets (/proc/net/unix: "... Inode Path").
function unixPaths() {
  const paths = new Map();
  let text;
  try {
    text = fs.readFileSync('/proc/net/unix', 'utf8');
  } catch (e) {
    return paths;
  }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8) paths.set(f[6], f[7]);
  }
  return paths;
}

function inherited() {
  const env = process.env;
  const count = parseInt(env.LISTEN_FDS, 10);
  const ours = env.LISTEN_PID === String(process.pid);
  // Never passed on, whether or not they were meant for this process.
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  const byPort = new Map();
  const byPath = new Map();
  if (!ours || !(count > 0)) return { byPort, byPath };
  const ports = tcpPorts();
  const paths = unixPaths();
  for (let fd = FIRST_FD; fd < FIRST_FD + count; fd++) {
    const inode = inodeOf(fd);
    if (inode === null) continue;
    if (ports.has(inode)) byPort.set(ports.get(inode), fd);
    else if (paths.has(inode)) byPath.set(paths.get(inode), fd);
  }
  return { byPort, byPath };
}

// The port or path a listen() call asks for, in any of its forms:
// listen(port[, host][, backlog][, cb]), listen(path[, cb]),
// listen({ port, host, path, ... }[, cb]).
function wanted(args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    if (first.fd !== undefined || first.handle !== undefined) return {};
    if (first.path !== undefined) return { path: String(first.path) };
    return { port: first.port };
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) return { path: first };
  return { port: first };
}

const { byPort, byPath } = inherited();

if (byPort.size > 0 || byPath.size > 0) {
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function keepupListen(...args) {
    const w = wanted(args);
    let fd;
    if (w.path !== undefined && byPath.has(w.path)) {
      fd = byPath.get(w.path);
      byPath.delete(w.path);
    } else if (w.port !== undefined && byPort.has(Number(w.port))) {
      fd = byPort.get(Number(w.port));
      byPort.delete(Number(w.port));
    }
    if (fd === undefined) return listen.apply(this, args);
    const callback = args.find((a) => typeof a === 'function');
    return callback ? listen.call(this, { fd }, callback) : listen.call(this, { fd });
  };
}
