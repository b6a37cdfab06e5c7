// keepup import: a PM2 ecosystem file as keepup commands (SPEC 12). Run by
// `keepup import FILE [--npm]` with node, embedded in the keepup binary.
// argv: FILE, then "npm" or "sh". Prints one `keepup ...` line per app
// (valid sh: every value quoted), comments for what has no keepup
// equivalent, or with "npm" a package.json "scripts" block (valid JSON).
'use strict';
const path = require('path');
const os = require('os');
const [file, mode] = process.argv.slice(-2);

let eco;
try {
  const abs = path.resolve(file);
  eco = require(abs); // .js, .cjs and .json alike
  if (eco && eco.default) eco = eco.default;
} catch (e) {
  process.stderr.write(`keepup: cannot read '${file}': ${String(e && e.message || e).split('\n')[0]}\n`);
  process.exit(1);
}
const apps = Array.isArray(eco) ? eco : (eco && (eco.apps || eco.services)) || (eco && eco.script ? [eco] : null);
if (!Array.isArray(apps) || apps.length === 0) {
  process.stderr.write(`keepup: '${file}' has no apps (expected module.exports = { apps: [...] })\n`);
  process.exit(1);
}

// A word for sh: single-quoted unless plain.
const q = (w) => {
  w = String(w);
  return /^[A-Za-z0-9_\-./=:,@+%]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
};
// PM2 durations: a number is milliseconds; a string may carry a unit.
const dur = (v) => (typeof v === 'number' || /^\d+$/.test(String(v)) ? `${Number(v)}ms` : String(v).trim());
// PM2 sizes: '500M', '1G', '200K'; a number is bytes.
const size = (v) => {
  if (typeof v === 'number' || /^\d+$/.test(String(v))) {
    const n = Number(v);
    if (n >= 1 << 30 && n % (1 << 30) === 0) return `${n / (1 << 30)}G`;
    if (n >= 1 << 20) return `${Math.round(n / (1 << 20))}M`;
    return `${Math.max(1, Math.round(n / 1024))}K`;
  }
  return String(v).trim();
};
// Moment tokens (PM2's log_date_format) to keepup's strftime.
const MOMENT = [
  ['YYYY', '%Y'], ['YY', '%y'], ['MMMM', '%B'], ['MMM', '%b'], ['MM', '%m'], ['DDDD', '%j'],
  ['DD', '%d'], ['dddd', '%A'], ['ddd', '%a'], ['HH', '%H'], ['hh', '%I'], ['mm', '%M'],
  ['ss', '%S'], ['.SSSSSS', '%.6f'], ['.SSS', '%.3f'], ['SSS', '%.3f'], ['ZZ', '%z'], ['Z', '%:z'],
  ['A', '%p'], ['a', '%p'], ['X', '%s'],
];
const strftime = (m) => {
  let out = '';
  for (let i = 0; i < m.length;) {
    if (m[i] === '[') {
      const end = m.indexOf(']', i);
      const lit = end < 0 ? m.slice(i + 1) : m.slice(i + 1, end);
      out += lit.replace(/%/g, '%%');
      i = end < 0 ? m.length : end + 1;
      continue;
    }
    const hit = MOMENT.find(([t]) => m.startsWith(t, i));
    if (hit) { out += hit[1]; i += hit[0].length; continue; }
    out += m[i] === '%' ? '%%' : m[i];
    i += 1;
  }
  return out;
};
// PM2 splits `args` given as one string on blanks, honouring quotes.
const words = (a) => {
  if (Array.isArray(a)) return a.map(String);
  const out = [];
  String(a).replace(/"([^"]*)"|'([^']*)'|(\S+)/g, (_, d, s, w) => { out.push(d ?? s ?? w); });
  return out;
};

const MAPPED = new Set([
  'name', 'script', 'args', 'interpreter', 'interpreter_args', 'node_args', 'cwd', 'env', 'env_file',
  'instances', 'exec_mode', 'autorestart', 'min_uptime', 'max_restarts', 'restart_delay',
  'exp_backoff_restart_delay', 'max_memory_restart', 'kill_timeout', 'stop_exit_codes',
  'error_file', 'err_file', 'out_file', 'log_file', 'merge_logs', 'combine_logs', 'log_date_format', 'time',
  'watch', 'ignore_watch', 'watch_delay', 'listen_timeout', 'wait_ready',
]);

const commands = [];
const names = [];
const notes = [];
for (const [i, app] of apps.entries()) {
  const a = [];
  const comments = [];
  const script = app.script || '';
  const name = app.name || path.basename(script, path.extname(script)) || `app${i + 1}`;
  names.push(name);
  let n = app.instances === undefined ? 1 : app.instances;
  if (n === 'max' || n === 0 || n === -1) n = os.cpus().length;
  else if (typeof n === 'number' && n < 0) n = Math.max(1, os.cpus().length + n);
  n = Number(n) || 1;
  const cluster = app.exec_mode === 'cluster' || app.exec_mode === 'cluster_mode';
  a.push('-d');
  if (n > 1 || cluster) a.push('-i', String(n));
  a.push('-n', name);
  if (app.cwd) a.push('--cwd', app.cwd);
  if (app.autorestart === false) a.push('--restart', 'never');
  if (app.stop_exit_codes !== undefined) {
    const codes = [].concat(app.stop_exit_codes).join(',');
    if (app.autorestart !== false) a.push('--restart', 'on-failure');
    a.push('--success-exit', codes);
  }
  if (app.min_uptime !== undefined) a.push('--min-uptime', dur(app.min_uptime));
  if (app.max_restarts !== undefined) a.push('--max-restarts', String(app.max_restarts));
  if (app.restart_delay !== undefined) a.push('--delay', dur(app.restart_delay), '--max-delay', dur(app.restart_delay));
  else if (app.exp_backoff_restart_delay !== undefined) a.push('--delay', dur(app.exp_backoff_restart_delay));
  if (app.max_memory_restart !== undefined) a.push('--max-memory', size(app.max_memory_restart));
  if (app.kill_timeout !== undefined) a.push('--kill-timeout', dur(app.kill_timeout));
  if (app.listen_timeout !== undefined) a.push('--ready-timeout', dur(app.listen_timeout));
  if (app.log_file) a.push('--log', app.log_file);
  if (app.out_file) a.push('--out-log', app.out_file);
  if (app.error_file || app.err_file) a.push('--err-log', app.error_file || app.err_file);
  if (app.log_date_format) a.push('--time-format', strftime(app.log_date_format));
  if (app.time === true) a.push('-t');
  if (app.watch) {
    for (const w of (app.watch === true ? ['.'] : [].concat(app.watch))) a.push('--watch', w);
    for (const w of [].concat(app.ignore_watch || [])) a.push('--watch-ignore', String(w).replace(/^\.\//, ''));
    if (app.watch_delay !== undefined) a.push('--watch-delay', dur(app.watch_delay));
  }
  for (const f of [].concat(app.env_file || [])) a.push('--env-file', f);
  for (const [k, v] of Object.entries(app.env || {})) a.push('-e', `${k}=${v}`);
  // The command: PM2 runs .js/.mjs/.cjs scripts with node (or the
  // interpreter given), anything else as it is.
  const interp = app.interpreter && app.interpreter !== 'none' ? app.interpreter
    : /\.(c|m)?js$/.test(script) ? 'node' : null;
  const interpArgs = words(app.interpreter_args || app.node_args || []);
  const cmd = [...(interp ? [interp, ...interpArgs] : []), script, ...words(app.args || [])];
  for (const [key, vars] of Object.entries(app)) {
    if (/^env_./.test(key) && key !== 'env_file' && vars && typeof vars === 'object') {
      const extra = Object.entries(vars).map(([k, v]) => `-e ${q(`${k}=${v}`)}`).join(' ');
      comments.push(`# ${key} (pm2 --env ${key.slice(4)}): add ${extra}, or put them in an env file (--env-file)`);
    }
  }
  if (cluster || n > 1) {
    comments.push(`# cluster of ${n}: add --listen PORT and run node with -r keepup-cli/listen, so the instances share the port with no master (README: Sockets, zero-downtime reload, cluster)`);
  }
  if (app.wait_ready) {
    comments.push('# wait_ready: process.send(\'ready\') has no keepup equivalent; use --notify (sd_notify READY=1), --ready-port, --ready-fd or --ready-cmd');
  }
  if (app.merge_logs || app.combine_logs) {
    comments.push('# merge_logs: each keepup instance of -i writes its own files (logs/app.log -> logs/app-1.log)');
  }
  for (const key of Object.keys(app)) {
    if (!MAPPED.has(key) && !/^env_./.test(key)) comments.push(`# not mapped: ${key}`);
  }
  const line = `keepup ${a.map(q).join(' ')} -- ${cmd.map(q).join(' ')}`;
  commands.push({ line, comments, name, cluster: n > 1 || cluster });
  notes.push(...comments);
}

if (mode === 'npm') {
  const sel = (c) => (c.cluster ? `'${c.name}-*'` : c.name);
  const all = commands.map(sel).join(' ');
  const scripts = {
    start: commands.map((c) => c.line).join(' && '),
    status: 'keepup status',
    logs: `keepup logs ${commands[0].cluster ? `${commands[0].name}-1` : commands[0].name} -f`,
    stop: `keepup stop ${all}`,
    restart: `keepup restart ${all}`,
    delete: `keepup delete ${all}`,
    monit: 'keepup status -w',
  };
  process.stdout.write(JSON.stringify({ scripts }, null, 2) + '\n');
  for (const n of notes) process.stderr.write(`${n}\n`);
} else {
  process.stdout.write(`# keepup commands for ${file} (keepup import)\n`);
  for (const c of commands) {
    for (const x of c.comments) process.stdout.write(`${x}\n`);
    process.stdout.write(`${c.line}\n`);
  }
}
