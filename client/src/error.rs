//! What went wrong with a request, classified so callers can map it to exit codes or
//! screen messages without looking at status numbers or error strings: which kind of
//! answer ([`Kind`]), and, when nothing answered, what failed on the way ([`Network`]).

use std::error::Error as _;
use std::time::Duration;

use tix_api::ErrorBody;

/// What went wrong, by kind.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the URL as an HTTP server: `network` says what failed on the
    /// way, `reason` says it in words.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        url: String,
        reason: String,
        network: Network,
    },
    /// The server answered with an error body. Its display adds when to try again, when
    /// the server said (`Retry-After`) and its message does not already.
    #[error("{}", with_retry(message, *retry_after))]
    Api {
        status: u16,
        message: String,
        field: Option<String>,
        /// `Retry-After` in seconds, on a 429 or 503 that sent one.
        retry_after: Option<u64>,
    },
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

/// What failed when no HTTP answer came back. People fix each differently (a typo in the
/// host, `http` for `https`, a slow network, a stack not started), so each is told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The host name did not resolve.
    Dns,
    /// Nothing listens on that port.
    Refused,
    /// Something listens, but the TLS handshake failed (e.g. `https://` to a plain-HTTP
    /// port, or a certificate not trusted).
    Tls,
    /// No answer within the client's timeout.
    TimedOut,
    /// Anything else (the connection dropped mid-answer, …).
    Other,
}

/// The kind of an error, for exit codes and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NotSignedIn,
    Forbidden,
    NotFound,
    /// Validation or a business rule (reserved, already paid, …), or too many requests.
    Rejected,
    Declined,
    Unavailable,
}

impl ClientError {
    pub fn kind(&self) -> Kind {
        match self {
            ClientError::Unreachable { .. } | ClientError::Decode(_) => Kind::Unavailable,
            ClientError::Api { status, .. } => match status {
                401 => Kind::NotSignedIn,
                403 => Kind::Forbidden,
                404 => Kind::NotFound,
                402 => Kind::Declined,
                // A 408 is the network's state (the body did not get through in time), not
                // the request's fault: as with a 5xx.
                408 | 500.. => Kind::Unavailable,
                _ => Kind::Rejected,
            },
        }
    }

    /// What failed on the way, when nothing answered.
    pub fn network(&self) -> Option<Network> {
        match self {
            ClientError::Unreachable { network, .. } => Some(*network),
            _ => None,
        }
    }

    /// How long the server asked the caller to wait before trying again.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ClientError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// "Too many failed sign-ins for this account, try again in 3 s". The services' own
/// 429 messages often say it already ("Too many requests, try again in 6 s"): then the
/// message is kept as it is.
fn with_retry(message: &str, retry_after: Option<u64>) -> String {
    match retry_after {
        Some(s) if !message.contains("try again") => format!("{message}, try again in {s} s"),
        _ => message.to_string(),
    }
}

/// Classifies a failed request from reqwest's error and the chain of causes under it
/// (hyper-util's "dns error", the OS's connection refused, tokio-rustls's handshake
/// errors, which it wraps as `InvalidData`). `timeout` is the limit on the whole request,
/// `connect` the shorter one on opening the connection: a connection that never opened
/// is told as such, with its own limit.
pub(crate) fn unreachable(
    base: &str,
    timeout: Duration,
    connect: Duration,
    e: &reqwest::Error,
) -> ClientError {
    let https = e.url().is_some_and(|u| u.scheme() == "https") || base.starts_with("https:");
    let host = e
        .url()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| base.to_string());
    let (network, reason) = match cause(e, https, &host) {
        Some((Network::TimedOut, _)) if e.is_connect() => connect_timed_out(connect),
        _ if e.is_connect() && e.is_timeout() => connect_timed_out(connect),
        _ if e.is_timeout() => (
            Network::TimedOut,
            format!("no answer within {} s", timeout.as_secs_f64()),
        ),
        Some(found) => found,
        None => (Network::Other, chain(e)),
    };
    ClientError::Unreachable {
        url: base.to_string(),
        reason,
        network,
    }
}

/// The connection did not open within `connect`: nothing answered at that address at
/// all (a firewall dropping packets, a host that is down), not a slow server.
fn connect_timed_out(connect: Duration) -> (Network, String) {
    (
        Network::TimedOut,
        format!("could not connect within {} s", connect.as_secs_f64()),
    )
}

fn cause(e: &reqwest::Error, https: bool, host: &str) -> Option<(Network, String)> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return Some((Network::Refused, "connection refused".into()));
                }
                std::io::ErrorKind::TimedOut => {
                    return Some((Network::TimedOut, "timed out".into()));
                }
                // tokio-rustls reports a TLS failure as `InvalidData` holding rustls's
                // own error (what the handshake choked on), or as `UnexpectedEof` when
                // the server hung up mid-handshake, as plain-HTTP servers do.
                std::io::ErrorKind::InvalidData if https => {
                    return Some((Network::Tls, format!("TLS handshake failed: {io}")));
                }
                std::io::ErrorKind::UnexpectedEof if https && e.is_connect() => {
                    return Some((Network::Tls, format!("TLS handshake failed: {io}")));
                }
                _ => {}
            }
            // An io::Error's `source` skips the error it wraps (hyper-rustls wraps
            // tokio-rustls's `InvalidData` in `Other`): descend into it instead.
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        // hyper-util's connector error is not exported; its text is its whole identity.
        if err.to_string() == "dns error" {
            let why = err.source().map(|s| format!(" ({s})")).unwrap_or_default();
            return Some((Network::Dns, format!("cannot resolve {host}{why}")));
        }
        next = err.source();
    }
    None
}

/// An error and its causes on one line, as `{:#}` would show an anyhow error.
fn chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(err) = next {
        text.push_str(": ");
        text.push_str(&err.to_string());
        next = err.source();
    }
    text
}

/// The error of a non-2xx answer, from its error body when it has one.
pub(crate) fn api_error(status: u16, retry_after: Option<u64>, bytes: &[u8]) -> ClientError {
    let first = serde_json::from_slice::<ErrorBody>(bytes)
        .ok()
        .and_then(|b| b.errors.into_iter().next());
    ClientError::Api {
        status,
        message: first
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| format!("the server answered {status}")),
        field: first.and_then(|e| e.field),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> ClientError {
        ClientError::Api {
            status,
            message: String::new(),
            field: None,
            retry_after: None,
        }
    }

    #[test]
    fn errors_are_classified_by_kind() {
        assert_eq!(api(401).kind(), Kind::NotSignedIn);
        assert_eq!(api(403).kind(), Kind::Forbidden);
        assert_eq!(api(404).kind(), Kind::NotFound);
        assert_eq!(api(400).kind(), Kind::Rejected);
        assert_eq!(api(429).kind(), Kind::Rejected);
        assert_eq!(api(402).kind(), Kind::Declined);
        assert_eq!(api(502).kind(), Kind::Unavailable);
        assert_eq!(api(408).kind(), Kind::Unavailable);
    }

    #[test]
    fn a_retry_after_is_said_once() {
        let e = api_error(
            429,
            Some(12),
            br#"{"errors":[{"message":"Too many failed sign-ins for this account"}]}"#,
        );
        assert_eq!(
            e.to_string(),
            "Too many failed sign-ins for this account, try again in 12 s"
        );
        assert_eq!(e.retry_after(), Some(12));
        let e = api_error(
            429,
            Some(6),
            br#"{"errors":[{"message":"Too many requests, try again in 6 s"}]}"#,
        );
        assert_eq!(e.to_string(), "Too many requests, try again in 6 s");
        let e = api_error(503, None, b"not json");
        assert_eq!(e.to_string(), "the server answered 503");
    }
}
