#!/usr/bin/env python3
"""Watch mode against nodemon, `pm2 start --watch` and `node --watch` (SPEC 11).

A project of 20,000 files in 2,000 folders plus a node_modules of 50,000
files. The app is a Node HTTP server on a fixed port that prints a line
when it starts; a new run that finds the port still taken (the old process
not gone yet) prints EADDRINUSE instead. Measured for each watcher, at its
default delays:

- setup: from launch until a save is first seen (saves every 50 ms);
- RSS and idle wake-ups (context switches per second) of the watcher;
- save-to-restart: from a save to the new child's first line, median of 20;
- a burst of 100 saves in one second: how many restarts it causes;
- EADDRINUSE: restarts whose new child found the old one still holding
  the port.

Writes bench/out/watch.md. Usage: bench/watch.py [ROUNDS]  (default 20)
"""
import os, shutil, signal, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
KEEPUP = os.environ.get("KEEPUP", str(ROOT / "target/keepup-static"))
NPM_BIN = OUT / "npm/node_modules/.bin"
WORK = Path(tempfile.mkdtemp(prefix="keepup-watch-"))
PROJECT = WORK / "project"
STARTS = WORK / "starts"
PORT = 24000 + os.getpid() % 20000


def make_tree():
    src = PROJECT / "src"
    for d in range(2000):
        p = src / f"d{d}"
        p.mkdir(parents=True)
        for f in range(10):
            (p / f"f{f}.js").write_text("x\n")
    nm = PROJECT / "node_modules"
    for d in range(5000):
        p = nm / f"pkg{d}"
        p.mkdir(parents=True)
        for f in range(10):
            (p / f"f{f}.js").write_text("x\n")
    (src / "index.js").write_text(f"""
const fs = require('fs');
const net = require('net');
const server = net.createServer((c) => c.end('ok'));
server.on('error', (e) => {{ fs.appendFileSync('{STARTS}', e.code + ' ' + Date.now() + '\\n'); process.exit(1); }});
server.listen({PORT}, '127.0.0.1', () => fs.appendFileSync('{STARTS}', 'start ' + Date.now() + '\\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('SIGINT', () => server.close(() => process.exit(0)));
""")


def env():
    return dict(os.environ, PM2_HOME=str(WORK / "pm2"), KEEPUP_HOME=str(WORK / "keepup"))


WATCHERS = {
    # Each watches the whole project, node_modules included in the tree.
    "keepup --watch .": lambda: [KEEPUP, "-q", "--watch", ".", "--", "node", "src/index.js"],
    "nodemon": lambda: [str(NPM_BIN / "nodemon"), "-q", "src/index.js"],
    "node --watch-path=.": lambda: ["node", "--watch-path=.", "src/index.js"],
    "pm2 start --watch": lambda: [str(NPM_BIN / "pm2"), "start", "src/index.js", "--name", "w",
                                  "--watch", "--no-daemon"],
}


def starts():
    try:
        lines = STARTS.read_text().splitlines()
    except FileNotFoundError:
        return [], 0
    return [int(l.split()[1]) for l in lines if l.startswith("start ")], sum(
        1 for l in lines if l.startswith("EADDRINUSE"))


def wait(cond, timeout):
    t = time.time()
    while time.time() - t < timeout:
        if cond():
            return True
        time.sleep(0.01)
    return False


def switches(pid):
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if "ctxt_switches" in line:
                total += int(line.split()[1])
    except FileNotFoundError:
        pass
    return total


def rss_kb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def save(path="src/d7/f3.js"):
    (PROJECT / path).write_text(f"// {time.time()}\n")


def measure(name, cmd):
    STARTS.unlink(missing_ok=True)
    launched = time.time()
    p = subprocess.Popen(cmd, cwd=PROJECT, env=env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    row = {"name": name}
    try:
        if not wait(lambda: len(starts()[0]) >= 1, 60):
            text = STARTS.read_text() if STARTS.exists() else "(no starts file)"
            row["error"] = "no first start: " + text.strip().replace("\n", "; ")[:80]
            return row
        # Setup: save every 500 ms from the first start until a restart
        # shows that the watcher saw one: the last save before the restart
        # tells when the watches were in place (within 500 ms).
        n0 = len(starts()[0])
        saves = []
        t_end = time.time() + 60
        while time.time() < t_end and len(starts()[0]) == n0:
            saves.append(time.time())
            save()
            # Longer than any watcher's default quiet period, which a faster
            # series would keep postponing.
            time.sleep(0.5)
        restarted_at = starts()[0][n0] / 1000 if len(starts()[0]) > n0 else None
        row["setup"] = None
        if restarted_at is not None:
            seen = [t for t in saves if t < restarted_at]
            # The last save before the restart, less the watcher's delay,
            # is an upper bound; report the first save of that burst window.
            row["setup"] = (seen[-1] if seen else restarted_at) - launched
        wait(lambda: False, 1.5)
        # The watcher process: the one started (PM2: the same, --no-daemon).
        before = switches(p.pid)
        time.sleep(2)
        row["wakeups"] = (switches(p.pid) - before) / 2
        row["rss"] = rss_kb(p.pid)
        lat = []
        for _ in range(ROUNDS):
            n = len(starts()[0])
            t = int(time.time() * 1000)
            save()
            if wait(lambda: len(starts()[0]) > n, 10):
                lat.append(starts()[0][n] - t)
            wait(lambda: False, 0.4)
        row["latency"] = statistics.median(lat) if lat else None
        wait(lambda: False, 1.5)
        n = len(starts()[0])
        for i in range(100):
            save(f"src/d{i % 50}/f{i % 10}.js")
            time.sleep(0.01)
        wait(lambda: False, 4)
        row["burst"] = len(starts()[0]) - n
        row["eaddrinuse"] = starts()[1]
    finally:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
        subprocess.run([str(NPM_BIN / "pm2"), "kill"], env=env(), capture_output=True)
        wait(lambda: False, 0.5)
    return row


def main():
    if not shutil.which("node"):
        sys.exit("watch bench: needs node")
    make_tree()
    rows = []
    for name, cmd in WATCHERS.items():
        if cmd()[0] != "node" and not Path(cmd()[0]).exists():
            rows.append({"name": name, "error": "not installed"})
            continue
        print(f"watch bench: {name}", file=sys.stderr)
        rows.append(measure(name, cmd()))
    lines = [
        f"| watcher (20,000 files + node_modules of 50,000) | setup | RSS | idle wake-ups/s | save-to-restart (median of {ROUNDS}) | restarts for 100 saves in 1 s | EADDRINUSE (old run not gone) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | {r['error']} | | | | | |")
            continue
        f = lambda v, fmt: (fmt.format(v) if v is not None else "-")
        lines.append(f"| {r['name']} | {f(r['setup'], '{:.2f} s')} | {r['rss'] / 1024:.1f} MiB | "
                     f"{r['wakeups']:.1f} | {f(r['latency'], '{:.0f} ms')} | {r['burst']} | {r['eaddrinuse']} |")
    (OUT / "watch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


try:
    OUT.mkdir(exist_ok=True)
    main()
finally:
    subprocess.run([str(NPM_BIN / "pm2"), "kill"], env=env(), capture_output=True)
    shutil.rmtree(WORK, ignore_errors=True)
