//! Cost of one memory sample (a scan of /proc and the tree sum) with 1, 10,
//! 100 and 500 processes in the tree. Run on demand: `cargo bench --bench
//! memory_sample` (bench/memory.sh does, and adds keepup's CPU use).
use keepup::memory;

use std::process::{Child, Command};
use std::time::Instant;

fn main() {
    let me = std::process::id() as i32;
    let mut sampler = memory::Sampler::default();
    let mut children: Vec<Child> = Vec::new();
    println!("| processes in tree | median per sample | p90 | processes on the machine |");
    println!("|---:|---:|---:|---:|");
    for target in [1usize, 10, 100, 500] {
        while children.len() < target {
            children.push(
                Command::new("sleep")
                    .arg("600")
                    .spawn()
                    .expect("spawn sleep"),
            );
        }
        // Wait until /proc shows them all.
        while sampler.sample(me).processes < target {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut times: Vec<f64> = (0..300)
            .map(|_| {
                let t = Instant::now();
                let s = sampler.sample(me);
                let us = t.elapsed().as_secs_f64() * 1e6;
                assert!(s.processes >= target);
                us
            })
            .collect();
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let total = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .count();
        println!(
            "| {target} | {:.0} µs | {:.0} µs | {total} |",
            times[150], times[270]
        );
    }
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}
