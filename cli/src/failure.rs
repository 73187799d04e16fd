//! Every way a command can fail, and the one place that turns each into the line on
//! stderr and the exit code. Commands return a [`Failure`] and never print errors or
//! exit themselves, so the codes promised in `tix --help` cannot drift apart command by
//! command.

use tix_client::format::printable;
use tix_client::{ClientError, Kind, Network};

/// What a command returns: scripts only see the exit code, people the message.
pub type Outcome = Result<(), Failure>;

#[derive(Debug)]
pub enum Failure {
    Client(ClientError),
    NotSignedIn,
    Usage(String),
    /// A declined card cancels the order server-side; the buyer needs to know that too,
    /// and whether the ticket can be reserved again yet (`released`: the order was seen
    /// cancelled).
    Declined {
        message: String,
        order: String,
        released: bool,
    },
    /// The payment went through, but the order had been cancelled (expired, or cancelled
    /// elsewhere) before it arrived: the order stays cancelled and the charge is refunded.
    PaidTooLate {
        order: String,
        payment: String,
    },
    /// The gateway answered, but some services behind it did not, or report trouble.
    Degraded,
    /// `events tail` found no broker at the bus endpoint.
    BusUnreachable {
        endpoint: String,
    },
    Local(anyhow::Error),
    /// Whoever read stdout went away (`| head`): not a failure, the output simply ends.
    PipeClosed,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

impl Failure {
    /// A problem on this machine (terminal, files), not with the marketplace.
    pub fn local(e: impl Into<anyhow::Error>) -> Failure {
        Failure::Local(e.into())
    }

    /// An error from paying for `order`: a 402 says what happened to the order, not just
    /// that the card failed.
    pub fn paying(e: ClientError, order: &str) -> Failure {
        match e {
            ClientError::Api {
                status: 402,
                message,
                ..
            } => Failure::Declined {
                message,
                order: order.to_string(),
                released: false,
            },
            other => Failure::Client(other),
        }
    }

    /// The exit code; `tix --help` documents the same table.
    pub fn code(&self) -> u8 {
        match self {
            Failure::PipeClosed => 0,
            Failure::Local(_) => 1,
            Failure::Usage(_) => 2,
            Failure::NotSignedIn => 3,
            Failure::PaidTooLate { .. } => 5,
            Failure::Declined { .. } => 6,
            Failure::Degraded | Failure::BusUnreachable { .. } => 7,
            Failure::Client(e) => match e.kind() {
                Kind::NotSignedIn | Kind::Forbidden => 3,
                Kind::NotFound => 4,
                Kind::Rejected => 5,
                Kind::Declined => 6,
                Kind::Unavailable => 7,
            },
        }
    }

    /// What went wrong and, where there is one, what to do next: printed after `error: `.
    /// The server's words in it went through [`printable`], so a line break or an escape
    /// sequence in an error body cannot forge a line or reach the terminal.
    pub fn message(&self) -> String {
        match self {
            Failure::NotSignedIn => "not signed in: run `tix signin` (or `tix signup`)".into(),
            Failure::Usage(m) => m.clone(),
            Failure::Declined {
                message,
                order,
                released: true,
            } => format!(
                "payment declined: {}\norder {order} is cancelled and its ticket released: it can be bought again now",
                printable(message)
            ),
            Failure::Declined { message, order, .. } => format!(
                "payment declined: {}\norder {order} is being cancelled: its ticket can be bought again in a moment (when `tix orders show {order}` says cancelled)",
                printable(message)
            ),
            Failure::PaidTooLate { order, payment } => {
                let payment = printable(payment);
                format!(
                    "order {order} was cancelled (it expired, or was cancelled elsewhere) before payment {payment} reached it: the order stays cancelled and the charge is refunded\nsee: tix payments show {payment}"
                )
            }
            Failure::Degraded => "some services are down or degraded".into(),
            Failure::BusUnreachable { endpoint } => format!(
                "cannot reach the event bus at {endpoint}\nhint: start the stack with `scripts/stack up`, or point --bus / TIX_BUS_URL at a running tix-bus"
            ),
            Failure::Local(e) => format!("{e:#}"),
            Failure::PipeClosed => String::new(),
            Failure::Client(ClientError::Unreachable {
                url,
                reason,
                network,
            }) => unreachable(url, &printable(reason), *network),
            Failure::Client(ClientError::Api { status: 401, .. }) => {
                "not signed in, or the session expired: run `tix signin`".into()
            }
            Failure::Client(e @ ClientError::Api { status, .. }) if *status >= 500 => {
                format!(
                    "the tix API failed ({status}): {}",
                    printable(&e.to_string())
                )
            }
            Failure::Client(e @ ClientError::Api { field: Some(f), .. }) => {
                printable(&format!("{e} ({f})"))
            }
            Failure::Client(e) => printable(&e.to_string()),
        }
    }
}

/// What failed on the way to the API, and what to do about that one: only a refused
/// connection means the stack is probably not running.
fn unreachable(url: &str, reason: &str, network: Network) -> String {
    match network {
        Network::Refused => format!(
            "cannot reach the tix API at {url} (connection refused)\nhint: is the stack running? Start it with `scripts/stack up`, or point --api / TIX_API at a running gateway"
        ),
        Network::Dns => format!(
            "cannot reach the tix API at {url}: {reason}\nhint: check the host name in --api / TIX_API"
        ),
        Network::Tls => format!(
            "cannot reach the tix API at {url}: {reason}\nhint: does it speak https there? A local stack is plain http://"
        ),
        Network::TimedOut if reason.starts_with("could not connect") => format!(
            "the tix API at {url} timed out: {reason}\nhint: nothing answered at that address; check the host and port in --api / TIX_API (a firewall or VPN may be dropping the connection)"
        ),
        Network::TimedOut => format!(
            "the tix API at {url} timed out: {reason}\nhint: it may be overloaded; try again, or allow longer with --timeout / TIX_TIMEOUT"
        ),
        Network::Other => format!("the connection to the tix API at {url} failed: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::args::Cli;

    fn api(status: u16) -> Failure {
        Failure::Client(ClientError::Api {
            status,
            message: "m".into(),
            field: None,
            retry_after: None,
        })
    }

    /// The codes are a promise to scripts, written down in `tix --help`: a code added here
    /// without a line there is a promise nobody can read.
    #[test]
    fn every_exit_code_is_in_the_help() {
        let help = Cli::command().render_long_help().to_string();
        let all = [
            Failure::local(std::io::Error::other("x")),
            Failure::Usage("u".into()),
            Failure::NotSignedIn,
            Failure::Declined {
                message: "m".into(),
                order: "o".into(),
                released: false,
            },
            Failure::PaidTooLate {
                order: "o".into(),
                payment: "p".into(),
            },
            Failure::Degraded,
            Failure::BusUnreachable {
                endpoint: "tcp://x".into(),
            },
            Failure::Client(ClientError::Unreachable {
                url: "u".into(),
                reason: "r".into(),
                network: Network::Dns,
            }),
            Failure::Client(ClientError::Decode("d".into())),
            api(400),
            api(401),
            api(402),
            api(403),
            api(404),
            api(409),
            api(429),
            api(503),
        ];
        for f in &all {
            let line = format!("\n  {}  ", f.code());
            assert!(help.contains(&line), "exit code {} of {f:?}", f.code());
        }
    }

    #[test]
    fn a_402_while_paying_names_the_cancelled_order() {
        let f = Failure::paying(
            ClientError::Api {
                status: 402,
                message: "Your card was declined".into(),
                field: None,
                retry_after: None,
            },
            "o1",
        );
        assert_eq!(f.code(), 6);
        assert!(
            f.message().starts_with(
                "payment declined: Your card was declined\norder o1 is being cancelled"
            ),
            "{}",
            f.message()
        );
        assert_eq!(
            Failure::paying(ClientError::Decode("x".into()), "o1").code(),
            7
        );
    }
}
