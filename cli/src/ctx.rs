//! What every command needs besides its own arguments: where the API is, which profile and
//! session, and whether the reader is a person or a script — which decides between JSON
//! and text, and whether a spinner may turn while it waits.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tix_client::ApiClient;
use tix_client::format::printable;
use tix_client::session::{self, Session};

use crate::failure::{Failure, Outcome};

/// Waits shorter than this pass without a spinner: one flashing by is noise.
const SPINNER_AFTER: Duration = Duration::from_millis(250);

/// Where a fresh install looks, matching `scripts/stack up`'s default port.
const DEFAULT_API: &str = "http://127.0.0.1:8080";

#[derive(Debug)]
pub struct Ctx {
    pub api: String,
    pub json: bool,
    /// The limit on each request (`--timeout`).
    pub timeout: Duration,
    /// A person watches both outputs: spinners may be drawn on stderr.
    spinner: bool,
    pub profile: String,
    /// Where the session was read from, so signing in and out write the same place.
    pub dir: PathBuf,
    pub session: Option<Session>,
}

impl Ctx {
    /// Loads the profile's session. An explicit `--api`/`TIX_API` wins; otherwise the API
    /// the session was made with, so a profile keeps talking to the stack it signed in to.
    pub fn load(api: Option<String>, json: bool, profile: String, timeout: Duration) -> Ctx {
        let dir = session::config_dir();
        let session = Session::load(&dir, &profile);
        let api = api
            .or_else(|| session.as_ref().map(|s| s.api.clone()))
            .unwrap_or_else(|| DEFAULT_API.to_string());
        Ctx {
            api,
            json,
            timeout,
            spinner: !json && std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
            profile,
            dir,
            session,
        }
    }

    /// Renews the session's token once half its life is gone and saves it, so a daily user
    /// signs in again only when the session's longest life is over (auth's
    /// `--session-max-age`, 30 days). Quietly does nothing when it cannot (offline, signed
    /// out elsewhere): the command itself then says what is wrong.
    pub async fn renew_if_due(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let Some(session) = self.session.as_mut().filter(|s| s.needs_renewal(now)) else {
            return;
        };
        let client =
            ApiClient::new(&self.api, Some(session.token.clone())).with_timeout(self.timeout);
        if let Ok(fresh) = client.renew().await {
            session.renewed(fresh.token);
            if let Err(e) = session.save(&self.dir, &self.profile) {
                eprintln!("warning: could not save the renewed session: {e}");
            }
        }
    }

    /// A client with the session's token if there is one: reading tickets needs none.
    pub fn client(&self) -> ApiClient {
        self.anonymous_client(self.session.as_ref().map(|s| s.token.clone()))
    }

    /// A client with this token, or none: signing up or in must not send an old session.
    pub fn anonymous_client(&self, token: Option<String>) -> ApiClient {
        ApiClient::new(&self.api, token).with_timeout(self.timeout)
    }

    /// Awaits `work`; if it takes longer than a moment and a person is watching (stdout
    /// and stderr are terminals, no `--json`), a spinner saying `what` turns on stderr
    /// meanwhile. Never in pipes: scripts get exactly the bytes they asked for.
    pub async fn busy<F: Future>(&self, what: &str, work: F) -> F::Output {
        if !self.spinner {
            return work.await;
        }
        let mut work = std::pin::pin!(work);
        tokio::select! {
            out = &mut work => return out,
            () = tokio::time::sleep(SPINNER_AFTER) => {}
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}…") {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(100));
        let out = work.await;
        bar.finish_and_clear();
        out
    }

    /// A client for commands that need an account, failing before any request so the user
    /// is told to sign in rather than shown the server's 401.
    pub fn signed_in(&self) -> Result<ApiClient, Failure> {
        if self.session.is_none() {
            return Err(Failure::NotSignedIn);
        }
        Ok(self.client())
    }

    /// The result of a command: one JSON document for scripts, or text for people (the
    /// text is only built when it is shown). The document goes through a
    /// `serde_json::Value`, so its keys come out sorted whatever the field order: the
    /// bytes scripts already depend on. The text goes through [`printable_lines`]; the JSON
    /// is left exact.
    pub fn print<T: Serialize + ?Sized>(&self, doc: &T, human: impl FnOnce() -> String) -> Outcome {
        if self.json {
            let value = serde_json::to_value(doc).unwrap_or_default();
            emit(&value.to_string())
        } else {
            let text = human();
            if text.is_empty() {
                return Ok(());
            }
            emit(&printable_lines(&text))
        }
    }
}

/// Text for people with the server's text in it, safe for a terminal: each line through
/// [`printable`] (control and format characters become U+FFFD), the line breaks kept.
pub fn printable_lines(text: &str) -> String {
    text.split('\n')
        .map(printable)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line (or block) on stdout. A reader that went away (`| head -c 100`) is not an
/// error: like ripgrep and git, the command ends quietly with success.
pub fn emit(text: &str) -> Outcome {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::PipeClosed),
        Err(e) => Err(Failure::local(e)),
    }
}
