//! Whole argument vectors and environments through the parser and the
//! validation that follows: no panic, and every error is one line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fuzz_target!(|data: &[u8]| {
    // NUL separates words; a word starting with 0x01 is KEY=VALUE for the environment.
    let mut args = Vec::new();
    let mut env = Vec::new();
    for word in data.split(|&b| b == 0) {
        match word.split_first() {
            Some((1, rest)) => {
                let text = String::from_utf8_lossy(rest).into_owned();
                if let Some((k, v)) = text.split_once('=') {
                    env.push((format!("KEEPUP_{}", k.to_ascii_uppercase()), OsString::from(v)));
                }
            }
            _ => args.push(OsString::from_vec(word.to_vec())),
        }
    }
    let lookup = |k: &str| env.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match keepup::cli::parse_from(args, lookup) {
        Ok(keepup::cli::Invocation::Run(settings)) => {
            if let Err(e) = keepup::config::Config::from_settings(settings, false) {
                let shown = keepup::diag::one_line(&e.0);
                assert!(!shown.contains('\n'), "multi-line error: {shown:?}");
            }
        }
        Ok(_) => {}
        Err(e) => assert!(!keepup::diag::one_line(&e.0).contains('\n'), "{:?}", e.0),
    }
});
