//! Env files: no panic on any bytes; every name parsed is valid; a file
//! made of the parsed variables, written back with double quotes and
//! escapes, parses to the same variables.
#![no_main]
use keepup::envfile::{parse, valid_name};
use libfuzzer_sys::fuzz_target;
use std::os::unix::ffi::OsStrExt;

fuzz_target!(|data: &[u8]| {
    let Ok(vars) = parse(data) else { return };
    let mut again = Vec::new();
    for (name, value) in &vars {
        assert!(valid_name(name.as_bytes()), "{name:?}");
        again.extend_from_slice(name.as_bytes());
        again.extend_from_slice(b"=\"");
        for &b in value.as_bytes() {
            match b {
                b'\\' => again.extend_from_slice(b"\\\\"),
                b'"' => again.extend_from_slice(b"\\\""),
                b'\n' => again.extend_from_slice(b"\\n"),
                b'\r' => again.extend_from_slice(b"\\r"),
                _ => again.push(b),
            }
        }
        again.extend_from_slice(b"\"\n");
    }
    let back = parse(&again).expect("a file written from parsed variables parses");
    assert_eq!(back, vars);
});
