//! Durations, sizes and signal names: no panic; what parses renders and
//! parses back to the same value where the format allows it.
#![no_main]
use keepup::units::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(d) = parse_duration(text) {
        let shown = format_duration(d);
        assert!(parse_duration(&shown).is_ok(), "{shown}");
    }
    if let Ok(n) = parse_size(text) {
        let _ = format_size(n);
    }
    if let Ok(sig) = parse_signal(text) {
        assert!((1..=64).contains(&sig));
        let name = signal_name(sig);
        if !name[3..].bytes().all(|b| b.is_ascii_digit()) {
            assert_eq!(parse_signal(&name), Ok(sig));
        }
    }
});
