//! Helpers for the library's unit tests.

// The one process-group guard of every test in the workspace (the
// end-to-end tests' support module and the reference server's tests include
// the same file); the unit tests use only part of it.
#[allow(dead_code)]
#[path = "../tests/support/group.rs"]
mod group;
pub(crate) use group::ProcessGroup;

use std::process::{Command, Output, Stdio};

/// Runs the test named `test` of this test binary in a child process with
/// the environment variable `env_key` set, for tests that change process-wide
/// state (signal dispositions) or end the process.
///
/// The child half is `#[ignore]`d, so that a normal run does not count it as
/// a pass it never made; `--include-ignored` runs it here all the same.
pub(crate) fn run_test_in_child(test: &str, env_key: &str) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    Command::new(exe)
        .args([
            "--exact",
            test,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(env_key, "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the child test process")
}
