//! The signed-in session: token, email and API URL, one file per profile in the user's
//! config dir (`$TIX_CONFIG_DIR`, else e.g. `~/.config/tix`), readable by the user only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub api: String,
    pub email: String,
    pub user_id: String,
    pub token: String,
    /// The last renewal could not move the token's end: the session has reached its
    /// longest life (auth's `--session-max-age`), so renewing again would only halve the
    /// time to that same end, over and over. The next sign-in starts a new file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_end: bool,
}

/// Where sessions live.
pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TIX_CONFIG_DIR") {
        return PathBuf::from(d);
    }
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from(".config"))
        .join("tix")
}

/// A profile name that is safe as a file name.
pub fn valid_profile(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub fn path(dir: &Path, profile: &str) -> PathBuf {
    dir.join(format!("session-{profile}.json"))
}

impl Session {
    /// Whether the token has used up half its life: then it is renewed, so someone who
    /// uses tix every day signs in again only when the session ends (auth's
    /// `--session-max-age`), while a lost token still expires.
    pub fn needs_renewal(&self, now_unix: i64) -> bool {
        !self.at_end
            && token_times(&self.token).is_some_and(|(iat, exp)| {
                let half = (exp - iat) / 2;
                now_unix < exp && now_unix >= iat + half
            })
    }

    /// Takes the token a renewal gave, noting when it ends exactly when the one before did
    /// (see [`Session::at_end`]). One that ends sooner is not that: the server's tokens
    /// were made shorter, and renewing goes on.
    pub fn renewed(&mut self, token: String) {
        let end = |t: &str| token_times(t).map(|(_, exp)| exp);
        self.at_end =
            matches!((end(&self.token), end(&token)), (Some(old), Some(new)) if new == old);
        self.token = token;
    }

    /// The saved session of a profile, if any (an unreadable one counts as none).
    pub fn load(dir: &Path, profile: &str) -> Option<Session> {
        let text = std::fs::read_to_string(path(dir, profile)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Saves atomically with mode 0600 (the directory 0700): the token is a credential.
    pub fn save(&self, dir: &Path, profile: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let target = path(dir, profile);
        let tmp = dir.join(format!(".session-{profile}.{}.tmp", std::process::id()));
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &target)?;
        Ok(target)
    }

    /// Removes a profile's session; true if there was one.
    pub fn remove(dir: &Path, profile: &str) -> std::io::Result<bool> {
        match std::fs::remove_file(path(dir, profile)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// When a token was issued and expires (unix seconds), read from its payload without
/// checking the signature: only the server can check it, the client only needs the times.
pub fn token_times(token: &str) -> Option<(i64, i64)> {
    use base64::Engine;
    #[derive(Deserialize)]
    struct Times {
        iat: i64,
        exp: i64,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let t: Times = serde_json::from_slice(&bytes).ok()?;
    Some((t.iat, t.exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_saved_for_its_owner_only_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("tix");
        let s = Session {
            api: "http://127.0.0.1:8080".into(),
            email: "a@b.co".into(),
            user_id: "u1".into(),
            token: "secret".into(),
            at_end: false,
        };
        let p = s.save(&d, "default").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(Session::load(&d, "default"), Some(s));
        assert_eq!(Session::load(&d, "other"), None);
        assert!(Session::remove(&d, "default").unwrap());
        assert!(!Session::remove(&d, "default").unwrap());
    }

    #[test]
    fn a_token_is_renewed_once_half_its_life_is_gone() {
        use base64::Engine;
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"HS256"}"#),
            b64(r#"{"id":"u","iat":1000,"exp":1100}"#)
        );
        assert_eq!(token_times(&token), Some((1000, 1100)));
        let s = Session {
            api: String::new(),
            email: String::new(),
            user_id: String::new(),
            token,
            at_end: false,
        };
        assert!(!s.needs_renewal(1010));
        assert!(s.needs_renewal(1050));
        assert!(!s.needs_renewal(1100), "expired: too late to renew");
        assert_eq!(token_times("garbage"), None);
    }

    /// Near the session's longest life, auth's renewals all end at the session's end. The
    /// first renewal that does not move the end is the last: without it, each renewal
    /// would come due again halfway to the same end (about 17 renewals in the last day).
    #[test]
    fn renewals_stop_once_one_cannot_move_the_end() {
        use base64::Engine;
        let token = |iat: i64, exp: i64| {
            let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
            format!(
                "{}.{}.sig",
                b64(r#"{"alg":"HS256"}"#),
                b64(&format!(r#"{{"id":"u","iat":{iat},"exp":{exp}}}"#))
            )
        };
        let mut s = Session {
            api: String::new(),
            email: String::new(),
            user_id: String::new(),
            token: token(1000, 1100),
            at_end: false,
        };
        // Renewed at 1060: the session ends at 1120, before the token's full life.
        s.renewed(token(1060, 1120));
        assert!(!s.at_end, "the end moved");
        assert!(s.needs_renewal(1090));
        s.renewed(token(1090, 1120));
        assert!(s.at_end);
        assert!(!s.needs_renewal(1110), "nothing left to gain by renewing");
        let mut shorter = Session {
            token: token(1000, 1100),
            at_end: false,
            ..s.clone()
        };
        shorter.renewed(token(1060, 1090));
        assert!(
            !shorter.at_end,
            "tokens made shorter on the server: renewals go on"
        );
        // Saved and loaded, it stays so; a session file from before the field is not.
        let dir = tempfile::tempdir().unwrap();
        s.save(dir.path(), "p").unwrap();
        assert_eq!(Session::load(dir.path(), "p"), Some(s.clone()));
        let old = r#"{"api":"a","email":"e","userId":"u","token":"t"}"#;
        let old: Session = serde_json::from_str(old).unwrap();
        assert!(!old.at_end);
        let saved = serde_json::to_string(&Session { at_end: false, ..s }).unwrap();
        assert!(!saved.contains("atEnd"), "written only when set: {saved}");
    }

    #[test]
    fn profile_names_cannot_escape_the_directory() {
        assert!(valid_profile("work_2"));
        assert!(!valid_profile("../x"));
        assert!(!valid_profile(""));
    }
}
