//! Judging one observation against a case's graded outcomes: pass when one
//! pass outcome matches, warn when a warn outcome does (or a SHOULD is not
//! met by a server that did answer), fail otherwise, with the reason.

use base64::Engine;

use super::observe::Observation;
use super::{latin1, CaseFile, ConnectionState, Level, Outcome};
use crate::check::Verdict;

/// Room for the fixed fields of an `/echo` and whatever else the
/// application adds to them, beyond what the request itself accounts for.
const ECHO_SLACK: usize = 1024 * 1024;

/// The largest body that can be the `/echo` of `case`'s request: every byte
/// of the request at most 6 bytes once in JSON (`\u00XX`; base64 of the
/// body takes 4/3), and [`ECHO_SLACK`]. A larger body is not parsed: it
/// cannot be the echo, and parsing it would cost several times its size in
/// memory that no budget counts, in every delivery at once.
fn echo_limit(case: &CaseFile) -> usize {
    let request: usize = case.send.iter().map(Vec::len).sum();
    request.saturating_mul(6).saturating_add(ECHO_SLACK)
}

/// Whether `observation` matches `outcome`; if not, why.
/// `persistence_case`: the case is about persistence itself (`http/persistence/`),
/// so an announced close does not stand in for a kept connection.
/// `echo_limit`: the largest body read as an `/echo` (see `echo_limit`).
pub fn matches(
    outcome: &Outcome,
    observation: &Observation,
    persistence_case: bool,
    echo_limit: usize,
) -> Result<(), String> {
    let first = observation.responses.first();
    // Outside the persistence cases, a server that says it will close
    // (Connection: close) and does so has kept its word: closing after any
    // response is allowed (RFC 9112 §9.6), requests pipelined after that
    // close are the client's to retry (§9.3.2), and the case is about
    // something else.
    let announced_close = !persistence_case
        && observation.connection == Some(ConnectionState::Closed)
        && observation.responses.last().is_some_and(|r| {
            // Said with `Connection: close`, or by an HTTP/1.0 response
            // without keep-alive, which closes by default (RFC 9112 §9.3).
            let connection = r
                .header_str("connection")
                .map(|c| c.to_ascii_lowercase())
                .unwrap_or_default();
            connection.contains("close")
                || (r.version == "HTTP/1.0" && !connection.contains("keep-alive"))
        });
    // A bare answer is no response: only an outcome that names it matches.
    match (&observation.bare, outcome.bare) {
        (None, true) => return Err("no bare answer".into()),
        (Some(bytes), false) => {
            return Err(format!(
                "a bare answer without a status line ({:?})",
                String::from_utf8_lossy(bytes)
            ))
        }
        _ => {}
    }
    if let Some(status) = outcome.status {
        match first {
            Some(response) if status.matches(response.status) => {}
            Some(response) => {
                return Err(format!("status {} instead of {status}", response.status))
            }
            None => return Err(format!("no response instead of status {status}")),
        }
    }
    if let Some(statuses) = &outcome.statuses {
        let got: Vec<u16> = observation.responses.iter().map(|r| r.status).collect();
        let cut_short = announced_close && !got.is_empty() && got.len() < statuses.len();
        if (got.len() != statuses.len() && !cut_short)
            || !statuses
                .iter()
                .zip(&got)
                .all(|(want, got)| want.matches(*got))
        {
            let want: Vec<String> = statuses.iter().map(|s| s.to_string()).collect();
            return Err(format!("statuses {got:?} instead of [{}]", want.join(", ")));
        }
    }
    if let Some(n) = outcome.responses {
        let cut_short =
            announced_close && !observation.responses.is_empty() && observation.responses.len() < n;
        if observation.responses.len() != n && !cut_short {
            return Err(format!(
                "{} responses instead of {n}",
                observation.responses.len()
            ));
        }
    }
    if let Some(interim) = &outcome.interim {
        if &observation.interim != interim {
            return Err(format!(
                "interim {:?} instead of {interim:?}",
                observation.interim
            ));
        }
    }
    if !outcome.echo.is_empty() || !outcome.absent.is_empty() {
        let Some(response) = first else {
            return Err("no response to read the echo from".into());
        };
        if response.body.len() > echo_limit {
            return Err(format!(
                "status {}: the body ({} bytes) is larger than an /echo of this request can be",
                response.status,
                response.body.len()
            ));
        }
        let echo: serde_json::Map<String, serde_json::Value> =
            match serde_json::from_slice(&response.body) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => {
                    return Err(format!(
                        "status {}: the body is not an /echo JSON object",
                        response.status
                    ))
                }
            };
        for (key, want) in &outcome.echo {
            let got = echo.get(key).and_then(|v| v.as_str());
            let got = if key == "body" {
                got.and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .map(|b| latin1(&b))
            } else {
                got.map(str::to_string)
            };
            if got.as_deref() != Some(want.as_str()) {
                return Err(format!(
                    "echo {key} = {} instead of {want:?}",
                    got.map_or("(absent)".into(), |g| format!("{g:?}"))
                ));
            }
        }
        for key in &outcome.absent {
            if let Some(value) = echo.get(key) {
                return Err(format!("echo has {key} = {value} but must not"));
            }
        }
    }
    if let Some(state) = outcome.connection {
        let excused = state == ConnectionState::Kept && announced_close;
        if observation.connection != Some(state) && !excused {
            let got = match observation.connection {
                Some(ConnectionState::Closed) => "closed",
                Some(ConnectionState::Kept) => "kept",
                None => "unknown",
            };
            return Err(format!(
                "connection {got} instead of {}",
                if state == ConnectionState::Closed {
                    "closed"
                } else {
                    "kept"
                }
            ));
        }
    }
    Ok(())
}

/// The grade of one observation, with the reason when it did not pass.
pub fn grade(case: &CaseFile, observation: &Observation) -> (Verdict, Option<String>) {
    let persistence = case.id.starts_with("http/persistence/");
    let limit = echo_limit(case);
    let mut reasons = Vec::new();
    for outcome in &case.pass {
        match matches(outcome, observation, persistence, limit) {
            Ok(()) => return (Verdict::Pass, None),
            Err(reason) => reasons.push(reason),
        }
    }
    if case
        .warn
        .iter()
        .any(|outcome| matches(outcome, observation, persistence, limit).is_ok())
    {
        return (Verdict::Warn, Some(reasons.join("; ")));
    }
    // A server that said it would close (Connection: close) and did, with
    // nothing left unanswered by its own account, does not keep connections
    // alive: RFC 9112 §9.6 lets it, though the persistence cases ask for
    // more. A warning, never a pass, and never when it answered only after
    // our side closed (it then waited for the end of the stream).
    if persistence
        && !observation.needed_end_of_stream
        && case
            .pass
            .iter()
            .any(|outcome| matches(outcome, observation, false, limit).is_ok())
    {
        return (
            Verdict::Warn,
            Some(format!(
                "closed as announced with Connection: close, which RFC 9112 §9.6 allows: {}",
                reasons.join("; ")
            )),
        );
    }
    // A SHOULD not met is a warning, as long as the server answered or
    // closed in time: a hang, a broken response or an answer that came only
    // after the client closed its side is never merely a SHOULD.
    let answered = !observation.responses.is_empty()
        || observation.bare.is_some()
        || observation.connection == Some(ConnectionState::Closed);
    if case.level == Level::Should
        && answered
        && observation.problem.is_none()
        && !observation.needed_end_of_stream
    {
        return (
            Verdict::Warn,
            Some(format!("SHOULD not met: {}", reasons.join("; "))),
        );
    }
    (Verdict::Fail, Some(reasons.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::parse_case;
    use crate::client::{Framing, Response};
    use rstest::rstest;

    fn case(id: &str, level: &str, expect: &str) -> CaseFile {
        let text = format!(
            "description = \"d\"\nrequirement = \"r\"\nlevel = \"{level}\"\nsend = ['GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n']\n{expect}"
        );
        parse_case(id, "test", &text).expect("a valid case")
    }

    fn response(status: u16, connection: Option<&str>) -> Response {
        Response {
            version: "HTTP/1.1".into(),
            status,
            reason: String::new(),
            headers: connection
                .map(|c| vec![("Connection".to_string(), c.as_bytes().to_vec())])
                .unwrap_or_default(),
            body: Vec::new(),
            trailers: Vec::new(),
            framing: Framing::ContentLength(0),
            head_raw: Vec::new(),
            held: Default::default(),
        }
    }

    fn seen(responses: Vec<Response>, connection: Option<ConnectionState>) -> Observation {
        Observation {
            responses,
            connection,
            ..Observation::default()
        }
    }

    const REJECT: &str = "[expect]\nwarn_preset = \"rejection\"\n[[expect.pass]]\nstatus = 400\nconnection = \"closed\"\n";

    #[test]
    fn a_bare_answer_matches_only_an_outcome_that_names_it() {
        let bare = Observation {
            bare: Some(b"Hello, World!".to_vec()),
            connection: Some(ConnectionState::Closed),
            ..Observation::default()
        };
        // Without a bare outcome, not even "a close with no response" matches.
        let strict = case("http/version/x", "MUST", REJECT);
        assert_eq!(grade(&strict, &bare).0, Verdict::Fail);
        let lenient = case(
            "http/version/x",
            "MUST",
            &format!("{REJECT}[[expect.warn]]\nbare = true\n"),
        );
        assert_eq!(grade(&lenient, &bare).0, Verdict::Warn);
    }

    #[rstest]
    #[case::in_time(false, Verdict::Warn)]
    #[case::only_after_the_client_closed(true, Verdict::Fail)]
    fn a_should_not_met_warns_only_when_answered_in_time(
        #[case] needed_end_of_stream: bool,
        #[case] expected: Verdict,
    ) {
        let should = case(
            "http/chunked/x",
            "SHOULD",
            "[[expect.pass]]\nstatus = 400\nconnection = \"closed\"\n",
        );
        let mut observation = seen(vec![response(200, None)], Some(ConnectionState::Closed));
        observation.needed_end_of_stream = needed_end_of_stream;
        assert_eq!(grade(&should, &observation).0, expected);
    }

    #[rstest]
    #[case::announced_close(Some("close"), Verdict::Warn)]
    #[case::unannounced_close(None, Verdict::Fail)]
    fn a_persistence_case_warns_on_an_announced_close_and_fails_on_a_silent_one(
        #[case] connection: Option<&str>,
        #[case] expected: Verdict,
    ) {
        let persistence = case(
            "http/persistence/x",
            "MUST",
            "[[expect.pass]]\nstatuses = [200, 200]\nconnection = \"kept\"\n",
        );
        let observation = seen(
            vec![response(200, connection)],
            Some(ConnectionState::Closed),
        );
        assert_eq!(grade(&persistence, &observation).0, expected);
    }

    #[rstest]
    #[case::as_large_as_an_echo_can_be(0, Verdict::Pass)]
    #[case::larger(1, Verdict::Fail)]
    fn an_echo_larger_than_the_request_allows_is_not_parsed(
        #[case] past_the_limit: usize,
        #[case] expected: Verdict,
    ) {
        let echo = case(
            "gateway/x",
            "MUST",
            "[[expect.pass]]\nstatus = 200\n[expect.pass.echo]\nREQUEST_METHOD = 'GET'\n",
        );
        let mut answer = response(200, None);
        let frame = r#"{"REQUEST_METHOD": "GET", "padding": ""}"#;
        let padding = "a".repeat(echo_limit(&echo) - frame.len() + past_the_limit);
        answer.body =
            format!(r#"{{"REQUEST_METHOD": "GET", "padding": "{padding}"}}"#).into_bytes();
        let (verdict, reason) = grade(&echo, &seen(vec![answer], None));
        assert_eq!(verdict, expected, "{reason:?}");
        if expected == Verdict::Fail {
            let reason = reason.unwrap_or_default();
            assert!(reason.contains("larger than an /echo"), "{reason}");
        }
    }

    #[test]
    fn an_incomplete_body_is_judged_on_its_head() {
        let status_only = case("http/target/x", "MUST", "[[expect.pass]]\nstatus = 200\n");
        let mut observation = seen(vec![response(200, None)], None);
        observation.incomplete = Some("framed by close, and the connection stayed open".into());
        assert_eq!(grade(&status_only, &observation).0, Verdict::Pass);
        assert!(observation.describe().contains("body incomplete"));
    }
}
