//! An idle keepup does not wake up at all: no timer, no polling. Measured as
//! keepup's context switches while its child sleeps.
mod util;
use std::time::Duration;
use util::*;

#[test]
fn idle_keepup_does_not_wake_up() {
    let dir = TempDir::new();
    let configs: Vec<Vec<String>> = vec![vec![], vec!["--log".into(), dir.s("a.log"), "-t".into()]];
    let mut running = vec![];
    for (i, args) in configs.iter().enumerate() {
        let ready = dir.s(&format!("ready{i}"));
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        a.push("--quiet");
        running.push((
            keepup(with_sh(
                &a,
                &format!("echo hello; touch {ready}; exec sleep 60"),
            ))
            .spawn(),
            dir.path(&format!("ready{i}")),
        ));
    }
    for (_, ready) in &running {
        wait_for("child started", Duration::from_secs(10), || ready.exists());
    }
    // Let the start-up output settle, then count.
    std::thread::sleep(Duration::from_millis(500));
    let before: Vec<u64> = running.iter().map(|(k, _)| switches(k.pid())).collect();
    std::thread::sleep(Duration::from_secs(3));
    for (i, (k, _)) in running.iter().enumerate() {
        let woke = switches(k.pid()) - before[i];
        assert!(
            woke <= 1,
            "keepup {:?} woke up {woke} times in 3s while idle",
            configs[i]
        );
    }
    for (k, _) in running {
        k.signal(libc::SIGTERM);
        k.finish();
    }
}
