//! The npm package, for real and offline: a throwaway Node project installs
//! the tarballs from `make npm-pack` and uses keepup from its npm scripts.
mod util;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use util::*;

fn tarballs() -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::var_os("KEEPUP_NPM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/npm"));
    let find = |prefix: &str| {
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with(prefix)
                    && n.ends_with(".tgz")
                    && n[prefix.len()..].starts_with(|c: char| c.is_ascii_digit())
            })
    };
    Some((find("keepup-cli-")?, find("keepup-cli-linux-x64-")?))
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Sets up the project, or says why the test cannot run here.
fn project() -> Option<TempDir> {
    project_with(&[])
}

/// The same, with more `npm install` arguments (`--ignore-scripts`).
fn project_with(install_args: &[&str]) -> Option<TempDir> {
    if !have("node") || !have("npm") {
        cannot_run("node and npm are needed for the npm round trip");
        return None;
    }
    let Some((main, platform)) = tarballs() else {
        panic!("no tarballs in target/npm: run 'make npm-pack' first (make test does)");
    };
    let dir = TempDir::new();
    std::fs::write(
        dir.path("package.json"),
        r#"{
  "name": "throwaway",
  "private": true,
  "scripts": {
    "start": "keepup --max-restarts 2 --delay 100ms -- node crash.js",
    "serve": "keepup --delay 100ms -- node server.js",
    "follow": "keepup logs web -f"
  }
}
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path("crash.js"),
        "console.log('app: starting'); process.exit(3);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path("server.js"),
        "require('fs').writeFileSync('node.pid', String(process.pid)); setInterval(() => {}, 1000);\n",
    )
    .unwrap();
    let out = Command::new("npm")
        .args([
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .args(install_args)
        .arg(&main)
        .arg(&platform)
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "npm install failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir)
}

fn npm(dir: &TempDir, args: &[&str]) -> Command {
    let mut c = Command::new("npm");
    c.args(args)
        .current_dir(&dir.0)
        .env("KEEPUP_HOME", dir.path("state"))
        .stdin(Stdio::null());
    c
}

#[test]
fn npm_round_trip() {
    let Some(dir) = project() else { return };

    // The bin is the native binary itself, not a Node shim.
    let bin = std::fs::read(dir.path("node_modules/keepup-cli/bin/keepup")).unwrap();
    assert_eq!(
        &bin[..4],
        b"\x7fELF",
        "postinstall did not put the native binary in place"
    );
    let v = npm(&dir, &["exec", "--offline", "--", "keepup", "--version"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("keepup {}", env!("CARGO_PKG_VERSION"))
    );

    // npm start: restarts, gives up, fails with the app's failure.
    let out = npm(&dir, &["start"]).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.matches("app: starting").count(),
        3,
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("gave up after 2 unstable restarts; last exit: code 3"),
        "{stderr}"
    );

    // npm run serve, then SIGTERM to npm (a process manager, CI): npm passes
    // it to the script's shell only; the shell dies and keepup's parent-death
    // signal stops node. Then SIGINT to npm's process group, as Ctrl-C sends
    // it: keepup gets it directly. (SIGINT to npm's pid alone reaches only
    // dash, which ignores it while it waits: see the README.)
    for (sig, group) in [(libc::SIGTERM, false), (libc::SIGINT, true)] {
        let _ = std::fs::remove_file(dir.path("node.pid"));
        let mut cmd = npm(&dir, &["run", "serve"]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let mut child = cmd.spawn().unwrap();
        let node = pid_from(&dir.path("node.pid"));
        assert!(alive(node));
        let target = if group {
            -(child.id() as i32)
        } else {
            child.id() as i32
        };
        unsafe { libc::kill(target, sig) };
        let stopped = holds_within(Duration::from_secs(15), || !alive(node));
        let npm_exited = holds_within(Duration::from_secs(15), || {
            child.try_wait().ok().flatten().is_some()
        });
        let _ = child.kill();
        let _ = child.wait();
        assert!(stopped, "node {node} outlived npm after signal {sig}");
        assert!(npm_exited, "npm still running after signal {sig}");
        // The next round reuses the name: its keepup must be gone first.
        wait_for("keepup gone", Duration::from_secs(15), || {
            let state = read(&dir.path("state/node.state"));
            let pid = state
                .lines()
                .find_map(|l| l.strip_prefix("keepup_pid="))
                .and_then(|p| p.parse::<i32>().ok());
            state.contains("state=stopped") && pid.is_some_and(|p| !alive(p))
        });
    }
}

/// `keepup-cli/listen` with the real node and the installed package: an
/// unchanged http server (CommonJS, and ESM with an express-style
/// `app.listen`) serves from keepup's socket, sees no LISTEN_* variables,
/// and a `keepup restart` under load refuses no connection.
#[test]
fn node_preload_serves_from_keepups_socket() {
    let Some(dir) = project() else { return };
    std::fs::write(
        dir.path("web.js"),
        "const http = require('http');\n\
         const server = http.createServer((q, r) => r.end(process.pid + ' ' + (process.env.LISTEN_FDS || 'none') + '\\n'))\n\
           .listen(Number(process.env.PORT), () => console.log('listening'));\n\
         process.on('SIGTERM', () => server.close(() => process.exit(0)));\n",
    )
    .unwrap();
    std::fs::write(
        dir.path("web.mjs"),
        "import http from 'node:http';\n\
         const app = { listen(...a) { return http.createServer((q, r) => r.end(`${process.pid} esm\\n`)).listen(...a); } };\n\
         const server = app.listen(process.env.PORT, () => console.log('listening'));\n\
         process.on('SIGTERM', () => server.close(() => process.exit(0)));\n",
    )
    .unwrap();
    let bin = dir.path("node_modules/.bin/keepup");
    for (app, name) in [("web.js", "cjs"), ("web.mjs", "esm")] {
        let port = util::net::free_port();
        let log = dir.path(&format!("{name}.log"));
        let mut k = Command::new(&bin);
        k.args(["-n", name, "--listen", &port.to_string(), "--log"])
            .arg(&log)
            .args(["-q", "--", "node", "-r", "keepup-cli/listen", app])
            .current_dir(&dir.0)
            .env("PORT", port.to_string())
            .env("KEEPUP_HOME", dir.path("state"))
            .stdin(Stdio::null());
        let mut k = k.spawn().unwrap();
        wait_for("node listening", Duration::from_secs(20), || {
            read(&log).contains("out listening")
        });
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let answer = |addr| -> String {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text.lines().last().unwrap_or("").to_string()
        };
        let first = answer(addr);
        if name == "cjs" {
            assert!(
                first.ends_with(" none"),
                "LISTEN_* reached the app: {first}"
            );
        } else {
            assert!(first.ends_with(" esm"), "{first}");
        }
        let clients = util::net::load(addr, 2);
        clients.grow(20);
        let r = keepup(["restart", name])
            .env("KEEPUP_HOME", dir.path("state"))
            .run();
        r.expect_code(0);
        clients.grow(20);
        let l = clients.finish();
        unsafe { libc::kill(k.id() as i32, libc::SIGTERM) };
        let _ = k.wait();
        assert!(
            l.errors.is_empty(),
            "{name}: {:?}",
            &l.errors[..l.errors.len().min(5)]
        );
        assert!(l.pids.len() >= 2, "{name}: answers from {:?}", l.pids);
    }
}

/// Install scripts off (`--ignore-scripts`; npm 11 without allowScripts):
/// `bin/keepup` is the Node shim. SIGTERM to npm still stops node, the shim
/// and keepup; and `keepup logs -f` in a script ends with npm.
#[test]
fn shim_path_forwards_and_follows_its_parent() {
    let Some(dir) = project_with(&["--ignore-scripts"]) else {
        return;
    };
    let bin = std::fs::read(dir.path("node_modules/keepup-cli/bin/keepup")).unwrap();
    assert!(
        bin.starts_with(b"#!/usr/bin/env node"),
        "the shim is in place"
    );
    let mut cmd = npm(&dir, &["run", "serve"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    let mut child = cmd.spawn().unwrap();
    let node = pid_from(&dir.path("node.pid"));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopped = holds_within(Duration::from_secs(15), || !alive(node));
    let npm_exited = holds_within(Duration::from_secs(15), || {
        child.try_wait().ok().flatten().is_some()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(stopped, "node {node} outlived npm through the shim");
    assert!(npm_exited, "npm still running");
    // No shim or keepup of this project is left.
    let project_dir = dir.0.display().to_string();
    let left = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/cwd"))
                .is_ok_and(|c| c.display().to_string() == project_dir)
        })
        .filter(|p| alive(*p))
        .collect::<Vec<_>>();
    assert!(
        holds_within(Duration::from_secs(10), || left.iter().all(|p| !alive(*p))),
        "left running in the project: {left:?}"
    );

    // `npm run follow` (keepup logs -f), then SIGTERM to npm: it ends.
    let state = dir.path("state");
    keepup(["-d", "-n", "web", "--", "sleep", "100"])
        .env("KEEPUP_HOME", &state)
        .run()
        .expect_code(0);
    let mut cmd = npm(&dir, &["run", "follow"]);
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    // The native `keepup logs web -f` (the shim's child), by its cmdline.
    let project = dir.0.display().to_string();
    let follower = || {
        std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let p = e.file_name().to_str()?.parse::<i32>().ok()?;
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (text.starts_with(&format!(
                "{project}/node_modules/keepup-cli-linux-x64/bin/keepup logs web"
            )) && alive(p))
            .then_some(p)
        })
    };
    let mut found = None;
    wait_for("keepup logs -f running", Duration::from_secs(15), || {
        found = follower();
        found.is_some()
    });
    let f = found.unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let ended = holds_within(Duration::from_secs(10), || !alive(f));
    let _ = child.kill();
    let _ = child.wait();
    keepup(["stop", "web"]).env("KEEPUP_HOME", &state).run();
    assert!(ended, "keepup logs -f {f} outlived npm");
}
