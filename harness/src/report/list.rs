//! `harness list`: every process check and case id with the requirement it
//! checks, as aligned lines for a person or one JSON document for a script.

use std::io::{self, Write};

use crate::cases::CaseFile;
use crate::checks;
use crate::cli::Format;

/// One line of the list.
struct Row {
    /// The check's or the case's id.
    id: String,
    /// What it checks, on one line.
    requirement: String,
    /// The conformance-app routes it cannot run without.
    needs: Vec<&'static str>,
}

/// Writes every process check, then every case of `cases`, to `out`.
pub fn write_list(out: &mut dyn Write, cases: &[CaseFile], format: Format) -> io::Result<()> {
    let mut rows: Vec<Row> = checks::catalog()
        .iter()
        .map(|c| Row {
            id: c.id.to_string(),
            requirement: squeeze(c.requirement),
            needs: c.needs.iter().map(|r| r.path()).collect(),
        })
        .collect();
    let process_checks = rows.len();
    rows.extend(cases.iter().map(|c| Row {
        id: c.id.clone(),
        requirement: c.description.clone(),
        needs: c.needs().iter().map(|r| r.path()).collect(),
    }));
    match format {
        Format::Json => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| serde_json::json!({"id": r.id, "requirement": r.requirement, "needs": r.needs}))
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&items).unwrap_or_default()
            )
        }
        Format::Human => {
            let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(0);
            for row in &rows {
                writeln!(out, "{:width$}  {}", row.id, row.requirement)?;
            }
            writeln!(
                out,
                "{process_checks} process checks, {} cases",
                cases.len()
            )
        }
    }
}

/// Requirement sentences are wrapped in the source; print them on one line.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(format: Format) -> String {
        let mut out = Vec::new();
        write_list(&mut out, &[], format).expect("write to a Vec");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn the_human_list_has_one_aligned_line_per_check_and_a_count() {
        let text = listed(Format::Human);
        let checks = checks::catalog();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), checks.len() + 1, "{text}");
        assert_eq!(
            lines.last().copied(),
            Some(format!("{} process checks, 0 cases", checks.len()).as_str())
        );
        let column = lines[0].find("  ").expect("two spaces after the id") + 2;
        assert!(lines[..checks.len()]
            .iter()
            .all(|l| !l[column..].starts_with(' ')));
    }

    #[test]
    fn the_json_list_names_id_requirement_and_needs() {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(&listed(Format::Json)).expect("JSON");
        assert_eq!(items.len(), checks::catalog().len());
        assert!(items.iter().all(|i| i["id"].is_string()
            && i["requirement"].as_str().is_some_and(|r| !r.contains('\n'))
            && i["needs"].is_array()));
    }

    #[test]
    fn wrapped_requirements_are_squeezed_onto_one_line() {
        assert_eq!(squeeze("a\n    b  c "), "a b c");
    }
}
