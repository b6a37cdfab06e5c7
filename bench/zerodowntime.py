#!/usr/bin/env python3
"""Zero-downtime under HTTP load: keepup against PM2 (SPEC 9).

A Node HTTP app under wrk (a new connection per request, so that a refused
connection shows as one), 20 s per row with a restart every 4 s:

- keepup: a crash (SIGKILL to the child), `keepup restart` and `keepup
  reload`, each with `--listen` (the app takes keepup's socket through the
  keepup-cli/listen preload) and without (the app binds the port itself);
- PM2: `pm2 restart` in fork mode, `pm2 reload` in cluster mode (2 instances).

Then requests per second with keep-alive: one keepup instance, keepup
`-d -i 2 --listen` (the kernel balances two processes, no master), and PM2
cluster mode with 2 instances (its master passes every connection on).

Writes bench/out/zerodowntime.md. Usage: bench/zerodowntime.py [SECONDS]
Needs node, wrk (Debian) and PM2 (bench/install-peers.sh puts it in
bench/out/npm); keepup from target/keepup-static or $KEEPUP.
"""
import os, re, shutil, signal, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
SECS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
EVERY = 4
KEEPUP = os.environ.get("KEEPUP", str(ROOT / "target/keepup-static"))
PM2 = OUT / "npm/node_modules/.bin/pm2"
WORK = Path(tempfile.mkdtemp(prefix="keepup-zd-"))
PORT = 23000 + os.getpid() % 20000
os.environ["KEEPUP_HOME"] = str(WORK / "state")
(WORK / "modules").mkdir()
os.symlink(ROOT / "npm/keepup-cli", WORK / "modules/keepup-cli")

APP = WORK / "app.js"
APP.write_text("""
const http = require('http');
const server = http.createServer((req, res) => res.end('ok ' + process.pid + '\\n'))
  .listen(Number(process.env.PORT), () => { if (process.send) process.send('ready'); });
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('SIGINT', () => server.close(() => process.exit(0)));
""")


def env(**extra):
    e = dict(os.environ, PORT=str(PORT), NODE_PATH=str(WORK / "modules"), PM2_HOME=str(WORK / "pm2"))
    e.update(extra)
    return e


def run(cmd, **kw):
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, **kw)


def wait_port(timeout=15):
    import socket
    t = time.time()
    while time.time() - t < timeout:
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def wrk(secs, close=True):
    cmd = ["wrk", "-t2", "-c32", f"-d{secs}s", "--latency", "--timeout", "5s"]
    if close:
        cmd += ["-H", "Connection: close"]
    return subprocess.Popen(cmd + [f"http://127.0.0.1:{PORT}/"], stdout=subprocess.PIPE, text=True)


def parse(text):
    r = {"requests": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0, "p99": "", "rps": 0.0}
    m = re.search(r"(\d+) requests in", text)
    r["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["connect"], r["read"], r["write"], r["timeout"] = map(int, m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"99%\s+(\S+)", text)
    r["p99"] = m.group(1) if m else ""
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    r["rps"] = float(m.group(1)) if m else 0.0
    return r


def under_load(act):
    """wrk for SECS, calling act() every EVERY seconds."""
    w = wrk(SECS)
    t0 = time.time()
    n = 0
    while time.time() - t0 < SECS - 1:
        time.sleep(EVERY)
        if time.time() - t0 < SECS - 1:
            act()
            n += 1
    return parse(w.communicate()[0]), n


def child_pid(name):
    for line in (WORK / "state" / f"{name}.state").read_text().splitlines():
        if line.startswith("child_pid="):
            return int(line.split("=")[1])
    return 0


def keepup_row(label, listen, act):
    args = [KEEPUP, "-d", "-n", "zd", "--log", str(WORK / "zd.log")]
    node = ["node", str(APP)]
    if listen:
        args += ["--listen", f"127.0.0.1:{PORT}"]
        node = ["node", "-r", "keepup-cli/listen", str(APP)]
    run(args + ["--"] + node)
    if not wait_port():
        return (label, None, 0)
    def do():
        if act == "crash":
            pid = child_pid("zd")
            if pid:
                os.kill(pid, signal.SIGKILL)
        else:
            run([KEEPUP, act, "zd"])
    r, n = under_load(do)
    run([KEEPUP, "stop", "zd"])
    return (label, r, n)


def pm2_row(label, cluster):
    if not PM2.exists():
        return (label, None, 0)
    args = [str(PM2), "start", str(APP), "--name", "zd"]
    if cluster:
        args += ["-i", "2"]
    run(args)
    if not wait_port():
        run([str(PM2), "kill"])
        return (label, None, 0)
    time.sleep(1)
    r, n = under_load(lambda: run([str(PM2), "reload" if cluster else "restart", "zd"]))
    run([str(PM2), "delete", "zd"])
    run([str(PM2), "kill"])
    return (label, r, n)


def throughput():
    rows = []
    secs = max(5, SECS // 2)
    def measure(label, start, stop):
        start()
        if not wait_port():
            stop()
            rows.append((label, None))
            return
        time.sleep(1)
        w = wrk(secs, close=False)
        rows.append((label, parse(w.communicate()[0])))
        stop()
    measure("keepup, 1 instance (--listen)",
            lambda: run([KEEPUP, "-d", "-n", "one", "--listen", f"127.0.0.1:{PORT}", "--",
                         "node", "-r", "keepup-cli/listen", str(APP)]),
            lambda: run([KEEPUP, "stop", "one"]))
    measure("keepup -d -i 2 --listen (kernel balancing)",
            lambda: run([KEEPUP, "-d", "-i", "2", "-n", "two", "--listen", f"127.0.0.1:{PORT}", "--",
                         "node", "-r", "keepup-cli/listen", str(APP)]),
            lambda: run([KEEPUP, "stop", "two-*"]))
    if PM2.exists():
        measure("PM2 cluster -i 2 (master)",
                lambda: run([str(PM2), "start", str(APP), "--name", "two", "-i", "2"]),
                lambda: (run([str(PM2), "delete", "two"]), run([str(PM2), "kill"])))
    return rows


def main():
    if not shutil.which("wrk") or not shutil.which("node"):
        sys.exit("zerodowntime: needs wrk and node (bench/install-peers.sh)")
    rows = [
        keepup_row("keepup crash (kill -9 child), --listen", True, "crash"),
        keepup_row("keepup crash (kill -9 child), app binds", False, "crash"),
        keepup_row("keepup restart, --listen", True, "restart"),
        keepup_row("keepup restart, app binds", False, "restart"),
        keepup_row("keepup reload, --listen", True, "reload"),
        keepup_row("keepup reload, app binds", False, "reload"),
        pm2_row("PM2 fork mode, pm2 restart", False),
        pm2_row("PM2 cluster -i 2, pm2 reload", True),
    ]
    lines = [
        f"| under load ({SECS} s, a restart every {EVERY} s) | restarts | requests | connect errors | read errors | timeouts | non-2xx | p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r, n in rows:
        if r is None:
            lines.append(f"| {label} | - | not run | | | | | |")
            continue
        lines.append(f"| {label} | {n} | {r['requests']:,} | {r['connect']} | {r['read'] + r['write']} | "
                     f"{r['timeout']} | {r['non2xx']} | {r['p99']} |")
    lines += ["", "| throughput (keep-alive) | requests/s | x of 1 instance |", "|---|---:|---:|"]
    tp = throughput()
    base = next((r["rps"] for _, r in tp if r), 0) or 1
    for label, r in tp:
        lines.append(f"| {label} | {r['rps']:,.0f} | {r['rps'] / base:.2f} |" if r else f"| {label} | not run | |")
    (OUT / "zerodowntime.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


try:
    OUT.mkdir(exist_ok=True)
    main()
finally:
    if PM2.exists():
        subprocess.run([str(PM2), "kill"], env=env(), capture_output=True)
    subprocess.run([KEEPUP, "stop", "*"], env=env(), capture_output=True)
    shutil.rmtree(WORK, ignore_errors=True)
