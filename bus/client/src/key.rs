//! Where a client's bus key comes from, for the programs that are not services (the
//! operator's `tix-bus stats|dead-letters|replay|tail`, the CLI's `tix events tail`):
//! `TIX_BUS_KEY`, or a file named by a flag or `TIX_BUS_KEY_FILE`, or else the key file
//! `scripts/stack` and `tix-bus init-policy` leave in the data dir. Never a flag: every
//! user of the machine sees a process's arguments. (Services read theirs through
//! `tix-common`'s secrets, the same way.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::protocol::auth::{BusKey, KeyError};

/// The variable holding a key itself.
pub const KEY_ENV: &str = "TIX_BUS_KEY";
/// The variable naming a file that holds it.
pub const KEY_FILE_ENV: &str = "TIX_BUS_KEY_FILE";

/// Why no key could be had.
#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    #[error("the bus key is given twice, by {KEY_ENV} and by a key file: keep one")]
    Twice,
    #[error("reading the bus key from {0}: {1}")]
    File(PathBuf, std::io::Error),
    #[error("the bus key in {0}: {1}")]
    Invalid(String, KeyError),
}

/// Where the key of client `name` lives in a data dir: `<data-dir>/keys/<name>.key`.
pub fn key_file_in(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("keys").join(format!("{name}.key"))
}

/// Where a tool run beside a local stack finds client `name`'s key when given none:
/// `$TIX_DATA_DIR/keys/<name>.key`, `.tix/keys/<name>.key` when that is unset (what
/// `scripts/stack` writes).
pub fn local_key_file(name: &str) -> PathBuf {
    let data_dir = std::env::var_os("TIX_DATA_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(".tix"), PathBuf::from);
    key_file_in(&data_dir, name)
}

/// The key from `TIX_BUS_KEY`, or from `file` (the flag, or `TIX_BUS_KEY_FILE`), or from
/// `fallback` when that file exists; `None` when there is none at all.
pub fn resolve(
    file: Option<&Path>,
    fallback: Option<&Path>,
) -> Result<Option<BusKey>, KeySourceError> {
    let from_env = std::env::var(KEY_ENV).ok().filter(|v| !v.is_empty());
    let file = file.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(KEY_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    match (from_env, file) {
        (Some(_), Some(_)) => Err(KeySourceError::Twice),
        (Some(text), None) => BusKey::from_hex(&text)
            .map(Some)
            .map_err(|e| KeySourceError::Invalid(KEY_ENV.into(), e)),
        (None, Some(path)) => read_key_file(&path).map(Some),
        (None, None) => match fallback.filter(|p| p.exists()) {
            Some(path) => read_key_file(path).map(Some),
            None => Ok(None),
        },
    }
}

/// A key from a file of hex (a trailing newline is fine). A file others can read is used,
/// with a warning.
pub fn read_key_file(path: &Path) -> Result<BusKey, KeySourceError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeySourceError::File(path.into(), e))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = %format!("{mode:04o}"),
                "a bus key's file is open to its group or others: chmod 600 it"
            );
        }
    }
    BusKey::from_hex(&text).map_err(|e| KeySourceError::Invalid(path.display().to_string(), e))
}
