//! Secrets (the JWT secret, the Stripe key) come from the environment or from a file, never
//! from a flag: every user of the machine sees a process's arguments in `ps`, while its
//! environment and a 0600 file are its owner's. They are held as [`SecretString`], whose
//! `Debug` prints `[REDACTED]`, so no log line or `{:?}` of a config shows them.
//!
//! A secret's flag still exists, hidden, only to be refused with a message saying what to
//! use instead ([`refuse_flag`]). The variable is read here rather than through clap's
//! `env`, which would also accept the flag.

use std::convert::Infallible;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
pub use secrecy::{ExposeSecret, SecretString};

/// Where one secret may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretSource {
    /// What it is, for messages: `the JWT secret`.
    pub what: &'static str,
    /// The variable holding the secret itself: `TIX_JWT_SECRET`.
    pub env: &'static str,
    /// The refused flag: `--jwt-secret`.
    pub flag: &'static str,
    /// The flag naming a file that holds it: `--jwt-secret-file`.
    pub file_flag: &'static str,
    /// That flag's variable: `TIX_JWT_SECRET_FILE`.
    pub file_env: &'static str,
}

impl SecretSource {
    /// How to pass it, for messages.
    pub fn how(&self) -> String {
        format!(
            "set {} in the environment, or put it in a file only you can read and pass {} PATH (or {})",
            self.env, self.file_flag, self.file_env
        )
    }

    /// The secret from its variable (unset or empty: `None`).
    pub fn from_env(&self) -> Option<SecretString> {
        std::env::var(self.env)
            .ok()
            .filter(|v| !v.is_empty())
            .map(SecretString::from)
    }

    /// The secret from the environment or the file, whichever was given; an error when
    /// both were (which one was meant?), `None` when neither was.
    pub fn resolve(
        &self,
        from_env: Option<&SecretString>,
        file: Option<&Path>,
    ) -> anyhow::Result<Option<SecretString>> {
        match (from_env, file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "{} is given twice, by {} and by {} ({}): keep one",
                self.what,
                self.env,
                self.file_flag,
                self.file_env
            ),
            (Some(secret), None) => Ok(Some(secret.clone())),
            (None, Some(path)) => read_file(path)
                .with_context(|| format!("reading {} from {}", self.what, path.display()))
                .map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// A secret from a file: its contents less the trailing newline. An empty file is an
/// error; a file others can read is used, with a warning.
pub fn read_file(path: &Path) -> anyhow::Result<SecretString> {
    let text = SecretString::from(std::fs::read_to_string(path)?);
    let secret = text.expose_secret().trim_end_matches(['\n', '\r']);
    anyhow::ensure!(!secret.is_empty(), "the file is empty");
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = %format!("{mode:04o}"),
                "a secret's file is open to its group or others: chmod 600 it"
            );
        }
    }
    Ok(SecretString::from(secret))
}

/// The value parser of a secret's hidden flag: refuses any value, without repeating it.
pub fn refuse_flag(source: SecretSource) -> RefusedFlag {
    RefusedFlag(source)
}

/// See [`refuse_flag`].
#[derive(Debug, Clone, Copy)]
pub struct RefusedFlag(SecretSource);

impl RefusedFlag {
    /// The one-line refusal.
    pub fn message(&self) -> String {
        format!(
            "{} is refused: a secret given as a flag is visible to every user of this machine \
             (ps); {}",
            self.0.flag,
            self.0.how()
        )
    }
}

impl clap::builder::TypedValueParser for RefusedFlag {
    type Value = Infallible;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        _value: &OsStr,
    ) -> Result<Infallible, clap::Error> {
        // A raw error prints as `error: <message>` alone: no usage, and not the value.
        Err(clap::Error::raw(
            clap::error::ErrorKind::ValueValidation,
            format!("{}\n", self.message()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: SecretSource = SecretSource {
        what: "the test secret",
        env: "TIX_TEST_SECRET",
        flag: "--test-secret",
        file_flag: "--test-secret-file",
        file_env: "TIX_TEST_SECRET_FILE",
    };

    #[test]
    fn a_file_gives_its_contents_less_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "  s3cret with spaces \r\n").unwrap();
        let got = SOURCE.resolve(None, Some(&file)).unwrap().unwrap();
        assert_eq!(got.expose_secret(), "  s3cret with spaces ");

        std::fs::write(&file, "\n").unwrap();
        let err = SOURCE.resolve(None, Some(&file)).unwrap_err();
        assert!(format!("{err:#}").contains("empty"), "{err:#}");
        let err = SOURCE
            .resolve(None, Some(&dir.path().join("missing")))
            .unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
    }

    #[test]
    fn the_environment_or_a_file_but_not_both() {
        let env = SecretString::from("from-env");
        let got = SOURCE.resolve(Some(&env), None).unwrap().unwrap();
        assert_eq!(got.expose_secret(), "from-env");
        assert!(SOURCE.resolve(None, None).unwrap().is_none());
        let err = SOURCE
            .resolve(Some(&env), Some(Path::new("/nonexistent")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("TIX_TEST_SECRET") && err.contains("--test-secret-file"),
            "{err}"
        );
        assert!(!err.contains("from-env"), "{err}");
    }

    #[test]
    fn the_flag_is_refused_without_echoing_the_value() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[arg(long = "test-secret", hide = true, value_parser = refuse_flag(SOURCE))]
            _refused: Option<Infallible>,
        }
        let err = Cli::try_parse_from(["x", "--test-secret", "hunter2-hunter2"]).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("--test-secret is refused")
                && text.contains("ps")
                && text.contains("TIX_TEST_SECRET")
                && text.contains("--test-secret-file"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(Cli::try_parse_from(["x"]).is_ok());
    }
}
