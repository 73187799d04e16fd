//! Every way a command can fail, and the one place that turns each into the line on
//! stderr and the exit code. Commands return a [`Failure`] and never print errors or
//! exit themselves, so the codes promised in `tix --help` cannot drift apart command by
//! command.

use tix_client::{ClientError, Kind};

/// What a command returns: scripts only see the exit code, people the message.
pub type Outcome = Result<(), Failure>;

#[derive(Debug)]
pub enum Failure {
    Client(ClientError),
    NotSignedIn,
    Usage(String),
    /// A declined card cancels the order server-side; the buyer needs to know that too.
    Declined {
        message: String,
        order: String,
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
            },
            other => Failure::Client(other),
        }
    }

    /// The exit code; `tix --help` documents the same table.
    pub fn code(&self) -> u8 {
        match self {
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
    pub fn message(&self) -> String {
        match self {
            Failure::NotSignedIn => "not signed in: run `tix signin` (or `tix signup`)".into(),
            Failure::Usage(m) => m.clone(),
            Failure::Declined { message, order } => format!(
                "payment declined: {message}\norder {order} is cancelled and its ticket released"
            ),
            Failure::PaidTooLate { order, payment } => format!(
                "order {order} was cancelled (it expired, or was cancelled elsewhere) before payment {payment} reached it: the order stays cancelled and the charge is refunded\nsee: tix payments show {payment}"
            ),
            Failure::Degraded => "some services are down or degraded".into(),
            Failure::BusUnreachable { endpoint } => format!(
                "cannot reach the event bus at {endpoint}\nhint: start the stack with `scripts/stack up`, or point --bus / TIX_BUS_URL at a running tix-bus"
            ),
            Failure::Local(e) => format!("{e:#}"),
            Failure::Client(ClientError::Unreachable { url, reason }) => format!(
                "cannot reach the tix API at {url} ({reason})\nhint: start the stack with `scripts/stack up`, or point --api / TIX_API at a running gateway"
            ),
            Failure::Client(ClientError::Api { status: 401, .. }) => {
                "not signed in, or the session expired: run `tix signin`".into()
            }
            Failure::Client(ClientError::Api {
                message,
                field: Some(f),
                ..
            }) => format!("{message} ({f})"),
            Failure::Client(e) => e.to_string(),
        }
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
            }),
            Failure::Client(ClientError::Decode("d".into())),
            api(400),
            api(401),
            api(402),
            api(403),
            api(404),
            api(409),
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
            },
            "o1",
        );
        assert_eq!(f.code(), 6);
        assert_eq!(
            f.message(),
            "payment declined: Your card was declined\norder o1 is cancelled and its ticket released"
        );
        assert_eq!(
            Failure::paying(ClientError::Decode("x".into()), "o1").code(),
            7
        );
    }
}
