//! `--time-format` strings: parsing never panics, and rendering any instant
//! with a format that parsed never panics.
#![no_main]
use keepup::logs::clock::{Clock, TimeFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 12 {
        return;
    }
    let secs = i64::from_le_bytes(data[..8].try_into().unwrap()) % (400 * 365 * 86400);
    let nanos = u32::from_le_bytes(data[8..12].try_into().unwrap()) % 1_000_000_000;
    let Ok(fmt) = std::str::from_utf8(&data[12..]) else { return };
    if let Ok(f) = TimeFormat::parse(fmt) {
        let mut clock = Clock::new(f, true);
        let _ = clock.render(secs, nanos);
        let _ = clock.render(secs, nanos / 2);
    }
});
