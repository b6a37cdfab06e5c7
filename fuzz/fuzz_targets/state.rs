//! State files and HTTP probe parsing on arbitrary bytes: decoding never
//! panics, and a decoded snapshot encodes and decodes to itself.
#![no_main]
use keepup::state::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let snap = Snapshot::decode(data);
    let again = Snapshot::decode(snap.encode().as_bytes());
    assert_eq!(snap, again);
    let _ = keepup::probe::parse_status_line(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = keepup::probe::parse_url(text);
    }
});
