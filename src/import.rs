//! `keepup import FILE [--npm]` (SPEC 12): a PM2 ecosystem file as keepup
//! commands. The file is JavaScript (or JSON) that only node can evaluate,
//! so the mapping is a small JavaScript program embedded in the binary and
//! run with `node`: no JSON parser in keepup, and the same from the static
//! binary and the npm package.

use crate::diag::complain;
use crate::protocol::exit;

const PROGRAM: &str = include_str!("import/ecosystem.js");

pub fn run(file: &std::path::Path, npm: bool) -> i32 {
    if !file.exists() {
        complain(&format!(
            "cannot read '{}': No such file or directory",
            file.display()
        ));
        return exit::FAILURE;
    }
    let status = std::process::Command::new("node")
        .arg("-e")
        .arg(PROGRAM)
        .arg(file)
        .arg(if npm { "npm" } else { "sh" })
        .stdin(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) => s.code().unwrap_or(exit::FAILURE),
        Err(e) => {
            complain(&format!(
                "keepup import evaluates the file with node, which cannot run here: {}",
                crate::diag::os_reason(&e)
            ));
            exit::FAILURE
        }
    }
}
