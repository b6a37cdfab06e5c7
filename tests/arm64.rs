//! The arm64 binary (`make static-arm64`, packed by `make npm-pack`) under
//! qemu-user: it runs, and it restarts a crashing child and gives up as the
//! x86-64 one does. `.ci/run` installs the cross linker and qemu-user.
mod util;
use std::path::Path;
use std::process::Command;
use util::*;

#[test]
fn arm64_binary_under_qemu() {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/keepup-static-arm64");
    if !bin.exists() {
        cannot_run(
            "target/keepup-static-arm64 is missing: make static-arm64 (make test runs it through npm-pack)",
        );
        return;
    }
    if Command::new("qemu-aarch64-static")
        .arg("--version")
        .output()
        .is_err()
    {
        cannot_run("qemu-aarch64-static (Debian: qemu-user-static) is not installed");
        return;
    }
    let v = Command::new("qemu-aarch64-static")
        .arg(&bin)
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("keepup {}", env!("CARGO_PKG_VERSION"))
    );
    let home = TempDir::new();
    let out = Command::new("qemu-aarch64-static")
        .arg(&bin)
        .args([
            "--max-restarts",
            "2",
            "--delay",
            "10ms",
            "--",
            "/bin/sh",
            "-c",
            "echo run; exit 3",
        ])
        .env("KEEPUP_HOME", &home.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("run").count(), 3, "{stdout}");
    assert!(
        stderr.contains("gave up after 2 unstable restarts; last exit: code 3"),
        "{stderr}"
    );
}
