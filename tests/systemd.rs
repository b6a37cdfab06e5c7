//! The systemd unit in examples/ is valid (`systemd-analyze verify`).
mod util;
use std::process::Command;
use util::*;

#[test]
fn example_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        cannot_run("systemd-analyze is not installed");
        return;
    }
    let dir = TempDir::new();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/keepup@.service"
    ))
    .unwrap();
    // Point ExecStart at the binary under test: verify checks it exists.
    let unit = unit.replace("/usr/local/bin/keepup", BIN);
    let path = dir.path("keepup@api.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lines about the host's own units are not ours.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("keepup@")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify failed:\n{stderr}"
    );
}
