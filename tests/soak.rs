//! The soak: keepup for 10 minutes (KEEPUP_SOAK_SECS) over a child that
//! writes bursts on both streams and crashes every 50-500 ms at random, with
//! rotation at 1 MiB and memory sampling every 100 ms. Checks that no line is
//! lost or reordered within a run, that keepup's descriptors and RSS stay
//! flat after warm-up, and that no zombie and no process is left.
//! Run with `make soak`; ignored by `make test`.
mod util;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use util::*;

const CHILD: &str = r#"
import os, random, sys, time
d = sys.argv[1]
with open(d + "/runs", "a+") as f:
    f.seek(0); run = len(f.read().splitlines()); f.write(f"{os.getpid()}\n")
random.seed(run)
deadline = time.time() + random.uniform(0.05, 0.5)
seq = {"out": 0, "err": 0}
pad = "x" * random.randint(0, 120)
while time.time() < deadline:
    for name, stream in (("out", sys.stdout.buffer), ("err", sys.stderr.buffer)):
        burst = random.randint(1, 400)
        stream.write("".join(f"{name} run {run} seq {seq[name] + i} {pad}\n" for i in range(burst)).encode())
        seq[name] += burst
        stream.flush()
    time.sleep(random.uniform(0, 0.02))
with open(d + "/written", "a") as f:
    f.write(f"{run} {seq['out']} {seq['err']}\n")
# A crash: no clean shutdown, sometimes in the middle of a line.
sys.stdout.buffer.write(f"out run {run} partial".encode()); sys.stdout.flush()
os._exit(1)
"#;

fn sample(pid: i32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let rss = read(Path::new(&format!("/proc/{pid}/status")))
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

#[test]
#[ignore]
fn soak() {
    let secs: u64 = std::env::var("KEEPUP_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let dir = TempDir::new();
    std::fs::write(dir.path("child.py"), CHILD).unwrap();
    let log = dir.path("logs/app.log");
    let k = keepup([
        "--log",
        log.to_str().unwrap(),
        "--log-max-size",
        "1M",
        "--log-keep",
        "100000",
        "-q",
        "--max-memory",
        "1G",
        "--memory-interval",
        "100ms",
        "--delay",
        "10ms",
        "--max-delay",
        "10ms",
        "--max-restarts",
        "unlimited",
        "--",
        "python3",
        dir.path("child.py").to_str().unwrap(),
        dir.0.to_str().unwrap(),
    ])
    .timeout(Duration::from_secs(secs + 120))
    .spawn();
    let start = Instant::now();
    let mut samples = vec![];
    let mut zombies_seen: HashMap<i32, u32> = HashMap::new();
    println!("{:>6} {:>6} {:>8} {:>8}", "time", "runs", "fds", "rss KB");
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        let (fds, rss) = sample(k.pid());
        let t = start.elapsed().as_secs();
        let runs = count_lines(&dir.path("runs"));
        samples.push((t, fds, rss));
        if t.is_multiple_of(30) || t < 3 {
            println!("{t:>6} {runs:>6} {fds:>8} {rss:>8}");
        }
        for c in children_of(k.pid()) {
            if stat_field(c, 0).as_deref() == Some("Z") {
                *zombies_seen.entry(c).or_default() += 1;
            }
        }
    }
    k.signal(libc::SIGTERM);
    let f = k.finish();
    assert!(f.code.is_some(), "{f}");

    // A zombie caught once may be between exit and reap; twice is a leak.
    let stuck: Vec<_> = zombies_seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(stuck.is_empty(), "zombies: {stuck:?}");
    let pids: Vec<i32> = read(&dir.path("runs"))
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    let left: Vec<&i32> = pids.iter().filter(|&&p| alive(p)).collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // Every run's lines, per stream, in order and complete.
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path("logs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let num = |p: &std::path::PathBuf| -> u64 {
        p.extension()
            .and_then(|e| e.to_str())
            .and_then(|e| e.parse().ok())
            .unwrap_or(0)
    };
    files.sort_by_key(|p| std::cmp::Reverse(num(p)));
    let mut next: HashMap<(String, u64), u64> = HashMap::new();
    let mut arrived = 0u64;
    let mut damaged = 0u64;
    for path in &files {
        for line in read(path).lines() {
            let mut it = line.splitn(3, ' ');
            let (_, tag, text) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or(""));
            if tag != "out" && tag != "err" {
                continue;
            }
            let w: Vec<&str> = text.split(' ').collect();
            // "out run R seq S pad"; the crash's partial line has no seq.
            if w.len() >= 5 && w[1] == "run" && w[3] == "seq" {
                let (run, seq): (u64, u64) = match (w[2].parse(), w[4].parse()) {
                    (Ok(r), Ok(s)) => (r, s),
                    _ => {
                        damaged += 1;
                        continue;
                    }
                };
                let key = (w[0].to_string(), run);
                let want = next.entry(key).or_insert(0);
                assert_eq!(
                    seq,
                    *want,
                    "{tag} run {run}: expected seq {want}, got {seq} in {}",
                    path.display()
                );
                *want += 1;
                arrived += 1;
            }
        }
    }
    let mut written = 0u64;
    let mut runs_done = 0;
    for l in read(&dir.path("written")).lines() {
        let v: Vec<u64> = l.split(' ').map(|x| x.parse().unwrap()).collect();
        assert_eq!(
            next.get(&("out".into(), v[0])).copied().unwrap_or(0),
            v[1],
            "run {} stdout",
            v[0]
        );
        assert_eq!(
            next.get(&("err".into(), v[0])).copied().unwrap_or(0),
            v[2],
            "run {} stderr",
            v[0]
        );
        written += v[1] + v[2];
        runs_done += 1;
    }
    assert_eq!(damaged, 0);

    // Samples land at any instant, a restart included (its pipes and
    // spawn's own pipe are open for a moment): compare the typical values
    // of the first and the last minute after warm-up, and bound the peaks.
    let median = |v: &mut Vec<u64>| -> u64 {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let warm: Vec<&(u64, usize, u64)> = samples.iter().filter(|s| s.0 >= 10).collect();
    let minute = warm.len().min(60);
    let (head, tail) = (&warm[..minute], &warm[warm.len() - minute..]);
    let fds_start = median(&mut head.iter().map(|s| s.1 as u64).collect());
    let fds_end = median(&mut tail.iter().map(|s| s.1 as u64).collect());
    let rss_start = median(&mut head.iter().map(|s| s.2).collect());
    let rss_end = median(&mut tail.iter().map(|s| s.2).collect());
    let max_fds = warm.iter().map(|s| s.1 as u64).max().unwrap();
    let max_rss = warm.iter().map(|s| s.2).max().unwrap();
    println!(
        "soak: {secs}s, {} runs ({runs_done} complete), {written} lines written by completed runs, {arrived} arrived in order, log files: {}",
        pids.len(),
        files.len()
    );
    println!(
        "soak: open fds {fds_start} (median, first minute) -> {fds_end} (median, last minute), {max_fds} at most; \
         RSS {rss_start} KB -> {rss_end} KB, {max_rss} KB at most"
    );
    assert!(
        fds_end <= fds_start,
        "descriptors grew: {fds_start} -> {fds_end}"
    );
    assert!(
        max_fds <= fds_start + 8,
        "descriptor peak {max_fds} over {fds_start}"
    );
    assert!(
        rss_end <= rss_start + 256,
        "RSS grew: {rss_start} -> {rss_end} KB"
    );
    assert!(
        max_rss <= rss_start + 1024,
        "RSS peak {max_rss} KB over {rss_start} KB"
    );
}
