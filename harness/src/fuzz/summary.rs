//! What `harness fuzz` prints: the plan before the run, and after it the
//! failure (minimal input, escaped bytes, seed, saved case file) or the
//! totals.

use std::io::{self, Write};

use super::{escape, FuzzConfig, FuzzOutcome};

/// Writes the header: what is fuzzed, with which seed, for how long, and
/// where failures go.
pub fn write_plan(out: &mut dyn Write, label: &str, config: &FuzzConfig) -> io::Result<()> {
    writeln!(out, "harness fuzz: {label}")?;
    writeln!(
        out,
        "  seed {}, up to {} cases or {:?}; failures saved to {}",
        config.seed,
        config.cases,
        config.time,
        config.save_dir.display()
    )
}

/// Writes the outcome of a run with `seed` to `out`, and to `notes` why a
/// failing input could not be saved. Returns whether a failure was found.
pub fn write_outcome(
    out: &mut dyn Write,
    notes: &mut dyn Write,
    outcome: &FuzzOutcome,
    seed: u64,
) -> io::Result<bool> {
    let rate = outcome.requests as f64 / outcome.elapsed.as_secs_f64().max(0.001);
    let totals = format!(
        "{} cases, {} requests in {:.1} s ({rate:.0} req/s)",
        outcome.cases,
        outcome.requests,
        outcome.elapsed.as_secs_f64()
    );
    let Some(failure) = &outcome.failure else {
        writeln!(out, "{totals}, no failure")?;
        return Ok(false);
    };
    writeln!(out, "FAIL  {}", failure.reason)?;
    if let Some(input) = &failure.input {
        writeln!(out, "      input:   {input}")?;
        writeln!(out, "      bytes:   '{}'", escape(&input.bytes()))?;
    }
    writeln!(
        out,
        "      seed:    {seed} (batch {}); replay with --seed {seed}",
        failure.batch
    )?;
    match &failure.saved {
        Some(Ok(path)) => {
            let dir = path
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            writeln!(
                out,
                "      saved:   {} (replay: harness run --cases {dir})",
                path.display()
            )?;
        }
        // Still a failure, as any: the finding is the server's, and the
        // seed and bytes above replay it; only the case file is missing.
        Some(Err(error)) => writeln!(
            notes,
            "harness: the failing input could not be saved as a case file: {error}"
        )?,
        None => {}
    }
    writeln!(out, "{totals}, 1 failure")?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_run_without_failure_ends_with_its_totals() {
        let outcome = FuzzOutcome {
            cases: 40,
            requests: 100,
            elapsed: Duration::from_secs(2),
            failure: None,
        };
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        assert!(!write_outcome(&mut out, &mut notes, &outcome, 7).unwrap());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "40 cases, 100 requests in 2.0 s (50 req/s), no failure\n"
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn a_failure_names_its_seed_and_batch_for_replay() {
        let outcome = FuzzOutcome {
            cases: 3,
            requests: 3,
            elapsed: Duration::from_secs(1),
            failure: Some(super::super::Failure {
                reason: "the server died".into(),
                input: None,
                saved: None,
                batch: 2,
            }),
        };
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        assert!(write_outcome(&mut out, &mut notes, &outcome, 99).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("FAIL  the server died\n"), "{text}");
        assert!(
            text.contains("seed:    99 (batch 2); replay with --seed 99"),
            "{text}"
        );
        assert!(text.ends_with(", 1 failure\n"), "{text}");
    }
}
