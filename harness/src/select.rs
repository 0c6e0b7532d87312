//! Which checks to run: `--only GLOB` and `--skip GLOB`, both repeatable.
//!
//! A check is included when (no `--only` was given, or any `--only` pattern
//! matches its id) and no `--skip` pattern matches it.
//!
//! A pattern matches a check id in one of two ways:
//!
//! - **Glob** — a pattern containing `*`, `?` or `[` is a shell glob
//!   (the `glob` crate's syntax) matched against the whole id. `*` also
//!   crosses `/`, so `http/*` selects `http/content-length/negative` and
//!   `*/negative` selects every check named `negative` in any group.
//! - **Group or exact id** — a pattern without those characters names either
//!   one id exactly or a whole group: `process` selects `process/zombies`
//!   and every other `process/...` check, and `http/content-length` selects
//!   everything under `http/content-length/`. It does not select
//!   `http/content-length-extra`: groups are split at `/` only. A trailing
//!   `/` is allowed (`process/` means `process`).
//!
//! Matching is case-sensitive, like the ids themselves.

use std::fmt;

/// Glob options: `*` may match `/` so that `http/*` reaches nested ids.
const MATCH_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

/// Characters that make a pattern a glob rather than a group name.
const GLOB_METACHARACTERS: &[char] = &['*', '?', '['];

/// An invalid `--only`/`--skip` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// The pattern is empty or is not a valid glob.
    Pattern {
        /// The pattern as the user typed it.
        pattern: String,
        /// Why it was rejected.
        reason: String,
    },
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::Pattern { pattern, reason } => {
                write!(f, "invalid check pattern {pattern:?}: {reason}")
            }
        }
    }
}

impl std::error::Error for SelectError {}

/// One parsed pattern.
#[derive(Debug, Clone)]
enum Matcher {
    /// A shell glob matched against the whole id.
    Glob(glob::Pattern),
    /// An exact id or a group prefix (stored without a trailing `/`).
    Group(String),
}

impl Matcher {
    fn parse(pattern: &str) -> Result<Matcher, SelectError> {
        let rejected = |reason: String| SelectError::Pattern {
            pattern: pattern.to_owned(),
            reason,
        };
        if pattern.contains(GLOB_METACHARACTERS) {
            return glob::Pattern::new(pattern)
                .map(Matcher::Glob)
                .map_err(|err| rejected(format!("{} at character {}", err.msg, err.pos)));
        }
        let group = pattern.trim_end_matches('/');
        if group.is_empty() {
            // An empty pattern would silently select nothing (or, with
            // --skip, nothing to skip): almost surely a shell quoting mistake.
            return Err(rejected(
                "empty pattern; give a check id, group or glob".into(),
            ));
        }
        Ok(Matcher::Group(group.to_owned()))
    }

    fn matches(&self, id: &str) -> bool {
        match self {
            Matcher::Glob(pattern) => pattern.matches_with(id, MATCH_OPTIONS),
            Matcher::Group(group) => id
                .strip_prefix(group.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }
}

/// The parsed `--only` and `--skip` patterns.
///
/// The default selection includes every check.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--only` patterns, with the text the user typed (for messages).
    only: Vec<(String, Matcher)>,
    /// `--skip` patterns.
    skip: Vec<Matcher>,
}

impl Selection {
    /// Parses the patterns; the first invalid one is reported.
    pub fn new(only: &[String], skip: &[String]) -> Result<Selection, SelectError> {
        let only = only
            .iter()
            .map(|pattern| Ok((pattern.clone(), Matcher::parse(pattern)?)))
            .collect::<Result<_, SelectError>>()?;
        let skip = skip
            .iter()
            .map(|pattern| Matcher::parse(pattern))
            .collect::<Result<_, SelectError>>()?;
        Ok(Selection { only, skip })
    }

    /// Whether check `id` should run: (no `--only`, or any `--only` pattern
    /// matches) and no `--skip` pattern matches.
    pub fn includes(&self, id: &str) -> bool {
        let wanted = self.only.is_empty() || self.only.iter().any(|(_, m)| m.matches(id));
        wanted && !self.skip.iter().any(|m| m.matches(id))
    }

    /// The `--only` patterns that match none of `ids`, in the order given.
    ///
    /// Lets the CLI say "`--only proces` matches no check" instead of
    /// silently running nothing after a typo.
    pub fn unmatched_only<'s, 'i>(
        &'s self,
        ids: impl IntoIterator<Item = &'i str>,
    ) -> Vec<&'s str> {
        let ids: Vec<&str> = ids.into_iter().collect();
        self.only
            .iter()
            .filter(|(_, m)| !ids.iter().any(|id| m.matches(id)))
            .map(|(text, _)| text.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn strings(patterns: &[&str]) -> Vec<String> {
        patterns.iter().map(|p| (*p).to_owned()).collect()
    }

    fn selection(only: &[&str], skip: &[&str]) -> Selection {
        Selection::new(&strings(only), &strings(skip)).expect("test patterns are valid")
    }

    #[rstest]
    // No patterns: everything runs.
    #[case(&[], &[], "process/zombies", true)]
    // Globs; `*` crosses `/`.
    #[case(&["process/*"], &[], "process/zombies", true)]
    #[case(&["process/*"], &[], "fds/leak", false)]
    #[case(&["http/*"], &[], "http/content-length/negative", true)]
    #[case(&["*/negative"], &[], "http/content-length/negative", true)]
    #[case(&["http/content-length/neg?tive"], &[], "http/content-length/negative", true)]
    #[case(&["[pf]*"], &[], "fds/leak", true)]
    #[case(&["[pf]*"], &[], "http/x", false)]
    // A glob must match the whole id.
    #[case(&["process"], &[], "processes/x", false)]
    #[case(&["proc*"], &[], "process/zombies", true)]
    // Bare words: exact id or group prefix, split at `/` only.
    #[case(&["process"], &[], "process/zombies", true)]
    #[case(&["process/"], &[], "process/zombies", true)]
    #[case(&["process/zombies"], &[], "process/zombies", true)]
    #[case(&["process/zombie"], &[], "process/zombies", false)]
    #[case(&["http/content-length"], &[], "http/content-length/negative", true)]
    #[case(&["http/content-length"], &[], "http/content-length-extra", false)]
    #[case(&["http/content-length"], &[], "http/transfer-encoding/chunked", false)]
    // Matching is case-sensitive.
    #[case(&["Process"], &[], "process/zombies", false)]
    // Several --only patterns: any may match.
    #[case(&["fds", "process"], &[], "process/zombies", true)]
    // --skip wins over --only.
    #[case(&["process"], &["process/zombies"], "process/zombies", false)]
    #[case(&["process"], &["process/zombies"], "process/orphans", true)]
    #[case(&[], &["http/*"], "http/content-length/negative", false)]
    #[case(&[], &["http"], "process/zombies", true)]
    #[case(&[], &["*slow*"], "concurrency/slow-client", false)]
    fn selection_includes_only_matching_and_not_skipped_ids(
        #[case] only: &[&str],
        #[case] skip: &[&str],
        #[case] id: &str,
        #[case] included: bool,
    ) {
        assert_eq!(
            selection(only, skip).includes(id),
            included,
            "--only {only:?} --skip {skip:?} on {id}"
        );
    }

    #[rstest]
    #[case(&["process/[z"], &[])]
    #[case(&[], &["***"])]
    #[case(&[""], &[])]
    #[case(&[], &["/"])]
    fn invalid_patterns_are_reported_with_the_pattern(
        #[case] only: &[&str],
        #[case] skip: &[&str],
    ) {
        let err =
            Selection::new(&strings(only), &strings(skip)).expect_err("pattern should be rejected");
        let SelectError::Pattern { pattern, reason } = &err;
        let typed = only
            .iter()
            .chain(skip)
            .next()
            .expect("one pattern per case");
        assert_eq!(pattern, typed);
        assert!(!reason.is_empty());
        assert!(err.to_string().contains(&format!("{typed:?}")), "{err}");
    }

    #[test]
    fn default_selection_includes_everything() {
        assert!(Selection::default().includes("anything/at-all"));
    }

    #[test]
    fn unmatched_only_patterns_are_listed_for_typo_warnings() {
        let sel = selection(&["process", "proces", "http/*", "nope/*"], &[]);
        let ids = ["process/zombies", "http/content-length/negative"];
        assert_eq!(sel.unmatched_only(ids), vec!["proces", "nope/*"]);
    }
}
