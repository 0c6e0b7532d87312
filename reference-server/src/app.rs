//! The conformance app: the small contract of routes that every server under
//! test is asked to serve, so that the harness can measure it.
//!
//! | route | response |
//! |---|---|
//! | `GET /`, `GET /hello` | 200 `Hello, World!` |
//! | `/sleep?ms=N` | waits N ms (0..=60000), then 200 |
//! | `/echo`, `/echo/...` | 200 JSON: the meta-variables, plus `body` in base64 |
//! | `/pid` | 200, the pid of the process that handled the request |
//! | `/bytes?n=N` | 200, N bytes (0..=1 GiB) |
//! | anything else | 404 |

use std::time::Duration;

use base64::Engine;

use crate::gateway::{App, Body, Environ, Response};

/// Longest sleep `/sleep` accepts, in milliseconds.
pub const MAX_SLEEP_MS: u64 = 60_000;
/// Largest body `/bytes` produces.
pub const MAX_BYTES: u64 = 1 << 30;

/// The conformance app.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConformanceApp;

impl App for ConformanceApp {
    fn call(&self, environ: &Environ, body: &[u8]) -> Response {
        let path = environ.get("PATH_INFO").unwrap_or("");
        let method = environ.get("REQUEST_METHOD").unwrap_or("");
        match path {
            "/" | "/hello" if method == "GET" || method == "HEAD" => {
                Response::text(200, "Hello, World!")
            }
            "/" | "/hello" => {
                Response::text(405, "Method Not Allowed").with_header("Allow", "GET, HEAD")
            }
            "/sleep" => match number(environ, "ms", MAX_SLEEP_MS) {
                Ok(ms) => {
                    // std's sleep resumes after EINTR, so a signal cannot cut it short.
                    std::thread::sleep(Duration::from_millis(ms));
                    Response::text(200, format!("slept {ms} ms"))
                }
                Err(why) => Response::text(400, why),
            },
            "/pid" => Response::text(200, std::process::id().to_string()),
            "/bytes" => match number(environ, "n", MAX_BYTES) {
                Ok(len) => Response {
                    status: 200,
                    headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                    body: Body::Repeat { byte: b'x', len },
                },
                Err(why) => Response::text(400, why),
            },
            _ if path == "/echo" || path.starts_with("/echo/") => echo(environ, body),
            _ => Response::text(404, "Not Found"),
        }
    }
}

/// A decimal query parameter between 0 and `max`.
fn number(environ: &Environ, name: &str, max: u64) -> Result<u64, String> {
    let raw = environ
        .query_param(name)
        .ok_or_else(|| format!("missing query parameter {name}"))?;
    match raw.parse::<u64>() {
        Ok(n) if n <= max && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!(
            "{name} must be a whole number from 0 to {max}, not {raw:?}"
        )),
    }
}

/// `/echo`: the meta-variables as the app saw them, plus the body in base64.
///
/// Written into one buffer of the exact size, the body encoded straight into
/// it: going through a JSON value would hold the base64 text twice and a
/// growing copy of the whole answer, near five times the body at the peak.
fn echo(environ: &Environ, body: &[u8]) -> Response {
    let mut object = serde_json::Map::new();
    for (name, value) in environ.iter() {
        object.insert(
            name.to_string(),
            serde_json::Value::String(value.to_string()),
        );
    }
    // Serialising a map of strings cannot fail; `{...}` without the body.
    let variables = serde_json::to_vec(&object).unwrap_or_else(|_| b"{}".to_vec());
    let base64 = &base64::engine::general_purpose::STANDARD;
    let encoded_len = body.len().div_ceil(3) * 4;
    let mut json = Vec::with_capacity(variables.len() + encoded_len + 12);
    json.extend_from_slice(&variables[..variables.len() - 1]);
    json.extend_from_slice(if object.is_empty() {
        b"\"body\":\""
    } else {
        b",\"body\":\""
    });
    let start = json.len();
    json.resize(start + encoded_len, 0);
    // The slice is exactly the encoded length, so encoding cannot run out.
    let written = base64.encode_slice(body, &mut json[start..]).unwrap_or(0);
    json.truncate(start + written);
    json.extend_from_slice(b"\"}");
    Response {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Body::Bytes(json),
    }
}
