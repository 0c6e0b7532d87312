//! Named sets of warn outcomes. Most rejection cases accept the same
//! fallbacks (another 4xx, a 5xx, or a close with no response); a preset
//! names that block once, so the case files cannot drift apart and a reader
//! sees at a glance which cases grade the usual way. Written in a case as
//! `warn_preset = "rejection"` inside `[expect]` (see `cases/README.md`).

use super::{ConnectionState, Outcome, StatusMatch};

/// A named set of warn outcomes, appended to a case's explicit ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarnPreset {
    /// Another 4xx, a 5xx, or a close with no response: the server refused
    /// the request, which is safe, but not with the status or the close the
    /// requirement names.
    Rejection,
}

impl WarnPreset {
    /// Every preset, in the order an error message lists them.
    pub const ALL: [WarnPreset; 1] = [WarnPreset::Rejection];

    /// The name a case file uses.
    pub fn name(self) -> &'static str {
        match self {
            WarnPreset::Rejection => "rejection",
        }
    }

    /// The preset called `name`; an unknown name is an error that lists the
    /// known ones.
    pub fn from_name(name: &str) -> Result<WarnPreset, String> {
        WarnPreset::ALL
            .into_iter()
            .find(|preset| preset.name() == name)
            .ok_or_else(|| {
                let known: Vec<String> = WarnPreset::ALL
                    .iter()
                    .map(|preset| format!("{:?}", preset.name()))
                    .collect();
                format!(
                    "unknown warn_preset {name:?}; the known presets are {}",
                    known.join(", ")
                )
            })
    }

    /// The outcomes the preset stands for.
    pub fn outcomes(self) -> Vec<Outcome> {
        match self {
            WarnPreset::Rejection => vec![
                Outcome {
                    status: Some(StatusMatch::Class(4)),
                    ..Outcome::default()
                },
                Outcome {
                    status: Some(StatusMatch::Class(5)),
                    ..Outcome::default()
                },
                Outcome {
                    responses: Some(0),
                    connection: Some(ConnectionState::Closed),
                    ..Outcome::default()
                },
            ],
        }
    }
}
