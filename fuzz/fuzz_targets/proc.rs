//! The /proc parsers on arbitrary text: no panic, and what parses is sane.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(st) = keepup::memory::parse_stat(data) {
        let _ = st.rss_pages.checked_mul(4096);
    }
});
