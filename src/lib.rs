//! keepup as a library: the modules the binary (`main.rs`) wires together,
//! public so that the fuzz targets and benchmarks reach the parsers. The
//! binary is the product; nothing here is a stable API.

pub mod backoff;
pub mod boot;
pub mod checks;
pub mod child;
pub mod cli;
pub mod config;
pub mod context;
pub mod detach;
pub mod diag;
pub mod envfile;
pub mod import;
pub mod logs;
pub mod machine;
pub mod memory;
pub mod names;
pub mod notify;
pub mod probe;
pub mod protocol;
pub mod reap;
pub mod run;
pub mod signals;
pub mod sockets;
pub mod state;
pub mod supervisor;
pub mod sys;
pub mod units;
pub mod users;
pub mod verbs;
pub mod watch;
