//! What every command needs besides its own arguments: where the API is, which profile and
//! session, and whether the reader is a person or a script.

use std::path::PathBuf;

use serde::Serialize;
use tix_client::ApiClient;
use tix_client::session::{self, Session};

use crate::failure::Failure;

/// Where a fresh install looks, matching `scripts/stack up`'s default port.
const DEFAULT_API: &str = "http://127.0.0.1:8080";

#[derive(Debug)]
pub struct Ctx {
    pub api: String,
    pub json: bool,
    pub profile: String,
    /// Where the session was read from, so signing in and out write the same place.
    pub dir: PathBuf,
    pub session: Option<Session>,
}

impl Ctx {
    /// Loads the profile's session. An explicit `--api`/`TIX_API` wins; otherwise the API
    /// the session was made with, so a profile keeps talking to the stack it signed in to.
    pub fn load(api: Option<String>, json: bool, profile: String) -> Ctx {
        let dir = session::config_dir();
        let session = Session::load(&dir, &profile);
        let api = api
            .or_else(|| session.as_ref().map(|s| s.api.clone()))
            .unwrap_or_else(|| DEFAULT_API.to_string());
        Ctx {
            api,
            json,
            profile,
            dir,
            session,
        }
    }

    /// Renews the session's token once half its life is gone and saves it, so a daily user
    /// never has to sign in again. Quietly does nothing when it cannot (offline, signed
    /// out elsewhere): the command itself then says what is wrong.
    pub async fn renew_if_due(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let Some(session) = self.session.as_mut().filter(|s| s.needs_renewal(now)) else {
            return;
        };
        let client = ApiClient::new(&self.api, Some(session.token.clone()));
        if let Ok(fresh) = client.renew().await {
            session.token = fresh.token;
            if let Err(e) = session.save(&self.dir, &self.profile) {
                eprintln!("warning: could not save the renewed session: {e}");
            }
        }
    }

    /// A client with the session's token if there is one: reading tickets needs none.
    pub fn client(&self) -> ApiClient {
        ApiClient::new(&self.api, self.session.as_ref().map(|s| s.token.clone()))
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
    /// bytes scripts already depend on.
    pub fn print<T: Serialize + ?Sized>(&self, doc: &T, human: impl FnOnce() -> String) {
        if self.json {
            let value = serde_json::to_value(doc).unwrap_or_default();
            println!("{value}");
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }
}
