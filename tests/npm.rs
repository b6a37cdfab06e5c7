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
    Some((find("keepup-")?, find("keepup-linux-x64-")?))
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
    "serve": "keepup --delay 100ms -- node server.js"
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
    let bin = std::fs::read(dir.path("node_modules/keepup/bin/keepup")).unwrap();
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
