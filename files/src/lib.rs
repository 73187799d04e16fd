//! Data directories and database files that only their owner can read, whatever the umask
//! of whoever started the process: the rules every tix process with data keeps (the
//! services through `tix-common`'s database, the broker for `bus.db`).
//!
//! - A missing data directory is created 0700 (each missing parent too). One that already
//!   exists is left as it is — it may be shared on purpose — with a warning when its group
//!   or others can get in.
//! - A database file is created 0600 before SQLite opens it (SQLite would create it with
//!   the umask: usually 0644), and an existing one is tightened to 0600. SQLite gives the
//!   `-wal` and `-shm` files it creates the main file's mode; leftovers of an older run are
//!   tightened too.
//! - A writer's commits are fsynced unless a batch needs no sync ([`sync::CommitSync`]).

pub mod sync;

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of a data directory this process creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every database file.
pub const FILE_MODE: u32 = 0o600;

/// Files SQLite keeps beside a database.
const SIDE_FILES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Creates `dir` (and its missing parents) with mode 0700; an existing directory is not
/// changed, only warned about when group or others can get in.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    mode = %format!("{mode:04o}"),
                    "the data directory is open to its group or others (it is left as it is; \
                     its database files are 0600): prefer a directory of mode 0700"
                );
            }
            Ok(())
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "exists and is not a directory",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => create_private_dir(dir),
        Err(e) => Err(e),
    }
}

/// mkdir with mode 0700, parents first; then chmod, since the umask may have taken owner
/// bits too. A directory someone else created meanwhile is left alone.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mkdir = |dir: &Path| DirBuilder::new().mode(DIR_MODE).create(dir);
    let made = match mkdir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(parent) => {
                    create_private_dir(parent)?;
                    mkdir(dir)
                }
                None => Err(e),
            }
        }
        other => other,
    };
    match made {
        Ok(()) => std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes `path` a database file of mode 0600: creates it empty (SQLite takes an empty file
/// as a new database) or tightens it, and tightens its `-wal`, `-shm` and `-journal` files
/// when they exist.
pub fn ensure_private_file(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => {
            // The umask can only take bits away; this puts back any owner bit it took.
            return std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE));
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    tighten(path)?;
    for suffix in SIDE_FILES {
        match tighten(&side_file(path, suffix)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

/// chmod 0600 an existing file holding secrets (the broker's policy), with a warning when
/// its group or others could read it; an error when it is missing.
pub fn tighten_private_file(path: &Path) -> io::Result<()> {
    tighten(path)
}

/// `tickets.db` → `tickets.db-wal`.
fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// chmod 0600 an existing regular file whose mode is anything else (a directory or a
/// socket in its place is left for SQLite to complain about).
fn tighten(path: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(path)?;
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_file() || mode == FILE_MODE {
        return Ok(());
    }
    std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE))?;
    if mode & 0o077 != 0 {
        tracing::warn!(
            file = %path.display(),
            was = %format!("{mode:04o}"),
            "the file was open to its group or others; it is now 0600"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn missing_directories_are_created_0700_and_existing_ones_are_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, Permissions::from_mode(0o755)).unwrap();

        let nested = shared.join("a").join("b");
        ensure_private_dir(&nested).unwrap();
        assert_eq!(mode(&shared.join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(
            mode(&shared),
            0o755,
            "an existing directory is not chmodded"
        );

        ensure_private_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755);
        ensure_private_dir(&nested).unwrap();

        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(ensure_private_dir(&file).is_err());
        assert!(ensure_private_dir(&file.join("below")).is_err());
    }

    #[test]
    fn database_files_are_created_0600_and_loose_ones_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("x.db");
        ensure_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);

        std::fs::write(&db, b"kept").unwrap();
        std::fs::set_permissions(&db, Permissions::from_mode(0o644)).unwrap();
        let wal = side_file(&db, "-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&wal, Permissions::from_mode(0o666)).unwrap();
        ensure_private_file(&db).unwrap();
        assert_eq!((mode(&db), mode(&wal)), (0o600, 0o600));
        assert_eq!(std::fs::read(&db).unwrap(), b"kept", "contents untouched");
        assert!(!side_file(&db, "-shm").exists(), "nothing else is created");
    }
}
