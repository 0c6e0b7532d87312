//! The harness against a server it knows nothing about: Python's wsgiref,
//! serving the conformance app shipped in `apps/conformance_app.py`.
//!
//! wsgiref's `WSGIServer` is iterative: one process, one thread, one request
//! at a time. The harness must say so (model "iterative"), fail
//! `concurrency/sleep-latency`, and find nothing wrong where an iterative
//! server cannot go wrong: no zombies, no children left running, no leaked
//! descriptors. The app reads HOST and PORT from its environment.

mod support;

use support::{HarnessRun, Verdict, ALL_IDS};

#[test]
fn wsgiref_is_iterative_and_fails_only_what_an_iterative_server_must() {
    support::require_python3();
    let app = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("apps")
        .join("conformance_app.py");
    assert!(app.is_file(), "{} is missing", app.display());
    let outcome = HarnessRun::run_cmd("wsgiref")
        .args(["--format", "json"])
        // The process checks only: the HTTP cases are tested elsewhere, and
        // against a one-request-at-a-time server many of them sit out their
        // timeouts.
        .args(support::only_process_checks())
        .server([std::ffi::OsString::from("python3"), app.into_os_string()])
        .run();
    let report = outcome.report();
    eprintln!(
        "wsgiref: exit {} in {:.1} s\n{}",
        outcome.code(),
        outcome.elapsed.as_secs_f64(),
        report.overview()
    );
    assert_eq!(report.ids(), ALL_IDS);
    assert_eq!(
        report.target.model, "iterative",
        "model evidence: {}",
        report.target.model_evidence
    );
    // The app serves every conformance route.
    for route in ["/sleep", "/echo", "/pid", "/bytes"] {
        assert_eq!(
            report.target.capabilities.get(route),
            Some(&true),
            "{:?}",
            report.target.capabilities
        );
    }
    assert_eq!(
        report.verdict("concurrency/sleep-latency"),
        Verdict::Fail,
        "{}",
        report.describe("concurrency/sleep-latency")
    );
    assert_eq!(
        report.verdict("fds/leak"),
        Verdict::Pass,
        "{}",
        report.describe("fds/leak")
    );
    // No zombies and no children left: an iterative server cannot get these
    // wrong, and a server that never forked passes them ("no children were
    // created") even when its backlog of 5 refuses part of a burst.
    for (id, figure) in [
        ("process/zombies", "zombies"),
        ("process/children-exit", "after"),
    ] {
        let check = report.check(id);
        assert_eq!(check.verdict, Verdict::Pass, "{}", report.describe(id));
        assert!(
            check.summary.contains("no children were created"),
            "{}",
            report.describe(id)
        );
        assert_eq!(
            check.figures.get(figure).and_then(|v| v.as_u64()),
            Some(0),
            "{}",
            report.describe(id)
        );
    }
    outcome.assert_code(1);
}
