//! The line splitter on arbitrary chunks: no panic, no line over 64 KiB, and
//! the lines joined with newlines give back the input (a cut at 64 KiB or at
//! end of input being the only places without one).
#![no_main]
use keepup::logs::pump::{LineAssembler, MAX_LINE};
use libfuzzer_sys::fuzz_target;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte picks the chunk size, so reads end anywhere.
    let size = 1 + data[0] as usize * 7;
    let input = &data[1..];
    let mut a = LineAssembler::default();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let now = Instant::now();
    for chunk in input.chunks(size) {
        a.feed(chunk, now, |l| lines.push(l.to_vec()));
    }
    a.flush(|l| lines.push(l.to_vec()));
    let mut rebuilt = Vec::new();
    for l in &lines {
        assert!(l.len() <= MAX_LINE);
        rebuilt.extend_from_slice(l);
    }
    let without_newlines: Vec<u8> = input.iter().copied().filter(|&b| b != b'\n').collect();
    assert_eq!(rebuilt, without_newlines);
    let newlines = input.iter().filter(|&&b| b == b'\n').count();
    assert!(lines.len() >= newlines);
});
