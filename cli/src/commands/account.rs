//! `signup`, `signin`, `signout`, `whoami`: the profile's session file is the only state
//! the CLI keeps, so these are the commands that write or read it.

use std::io::{BufRead, IsTerminal};

use serde::Serialize;
use tix_client::session::Session;

use crate::args::Credentials;
use crate::ctx::Ctx;
use crate::failure::{Failure, Outcome};
use crate::output;

/// `--json` after signing up or in. Fields in key order, as the document was first
/// written as a sorted JSON map.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedInDoc<'a> {
    display_name: &'a str,
    email: &'a str,
    id: &'a str,
    profile: &'a str,
}

/// `--json` after signing out: `signedOut` is false when there was no session, which is
/// not an error (signing out twice is fine).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedOutDoc<'a> {
    profile: &'a str,
    signed_out: bool,
}

pub async fn signup(ctx: &Ctx, c: Credentials, name: Option<String>) -> Outcome {
    sign(ctx, c, Some(name)).await
}

pub async fn signin(ctx: &Ctx, c: Credentials) -> Outcome {
    sign(ctx, c, None).await
}

/// `new` is `Some(display name)` for a sign-up.
async fn sign(ctx: &Ctx, c: Credentials, new: Option<Option<String>>) -> Outcome {
    let email = read_email(c.email)?;
    let password = read_password(c.password_stdin)?;
    // No token: an old session must not ride along on the request that replaces it.
    let client = ctx.anonymous_client(None);
    let who = match &new {
        Some(name) => {
            ctx.busy(
                "Signing up",
                client.signup(&email, &password, name.as_deref()),
            )
            .await?
        }
        None => {
            ctx.busy("Signing in", client.signin(&email, &password))
                .await?
        }
    };
    let new = new.is_some();
    let session = Session {
        api: ctx.api.clone(),
        email: who.email.clone(),
        user_id: who.id.clone(),
        token: who.token.clone(),
        at_end: false,
    };
    session
        .save(&ctx.dir, &ctx.profile)
        .map_err(|e| Failure::Local(anyhow::anyhow!("saving the session: {e}")))?;
    let doc = SignedInDoc {
        display_name: &who.display_name,
        email: &who.email,
        id: &who.id,
        profile: &ctx.profile,
    };
    ctx.print(&doc, || {
        format!(
            "{} as {} (profile {}); others see you as {}.",
            if new {
                "Signed up and signed in"
            } else {
                "Signed in"
            },
            who.email,
            ctx.profile,
            who.display_name
        )
    })
}

pub async fn signout(ctx: &Ctx) -> Outcome {
    if ctx.session.is_some() {
        // The server revokes the session, so a copy of the token is refused everywhere;
        // offline, the local session is still removed.
        let _ = ctx.busy("Signing out", ctx.client().signout()).await;
    }
    let removed = Session::remove(&ctx.dir, &ctx.profile).map_err(Failure::local)?;
    let doc = SignedOutDoc {
        profile: &ctx.profile,
        signed_out: removed,
    };
    ctx.print(&doc, || {
        if removed {
            "Signed out.".into()
        } else {
            "Not signed in.".into()
        }
    })
}

pub async fn whoami(ctx: &Ctx) -> Outcome {
    // Asks the server rather than trusting the file: the token may have expired.
    let client = ctx.signed_in()?;
    let me = ctx
        .busy("Asking who you are", client.current_user())
        .await?
        .ok_or(Failure::NotSignedIn)?;
    ctx.print(&me, || {
        format!(
            "{} (profile {}, user {}), shown to others as {}\nsession valid until {}",
            me.email,
            ctx.profile,
            me.id,
            me.display_name,
            output::date(me.exp)
        )
    })
}

/// Scripts pipe the password in; people are asked without echo. Never a flag value,
/// which would end up in shell history and `ps`.
fn read_password(from_stdin: bool) -> Result<String, Failure> {
    let pw = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(Failure::local)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ").map_err(Failure::local)?
    } else {
        return Err(Failure::Usage(
            "no terminal to ask for the password: pipe it in with --password-stdin".into(),
        ));
    };
    if pw.is_empty() {
        return Err(Failure::Usage("the password is empty".into()));
    }
    Ok(pw)
}

/// Asks only on a terminal: a script without `--email` should fail, not hang on stdin.
fn read_email(given: Option<String>) -> Result<String, Failure> {
    if let Some(e) = given {
        return Ok(e);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage("give --email".into()));
    }
    eprint!("Email: ");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(Failure::local)?;
    Ok(line.trim().to_string())
}
