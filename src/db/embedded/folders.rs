//! Where the embedded cluster's files live and who may enter them.
//!
//! The cluster trusts every connection that reaches it, so the folders are
//! the lock: it has no TCP listener, its Unix socket sits in a folder only
//! the cluster's OS user (and root) may enter, and `pg_hba.conf`, written on
//! every start, accepts nothing but socket connections. Every file we make
//! is 0600 and every folder 0700; the one exception is the folder holding
//! the cluster, which the unprivileged PostgreSQL user must walk through when
//! we are root: it is 0710 and belongs to that user's group, never readable
//! by others.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::RunAs;
use crate::db::error::{Error, IoContext};

/// Where relocated clusters live (see [`locate_pgdata`]).
const RELOCATED_CLUSTERS: &str = "/var/lib/crm/clusters";

/// The longest Unix socket path the kernel takes (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Our `pg_hba.conf`: socket connections only. Written on every start, so a
/// cluster made by an older version (trust for every TCP client too) loses
/// its TCP lines the next time it starts.
const PG_HBA: &str = "\
# Written by crm on every start; edits are lost.
# Only connections over the Unix socket, whose folder only the cluster's
# OS user and root may enter: that folder is the lock, not a password.
local all all trust
local replication all trust
";

/// The cluster folder: `<data-dir>/pgdata`. As root, PostgreSQL runs as an
/// unprivileged user that must be able to walk down to it; when the data
/// folder sits under a folder that user cannot enter (like /root), the
/// cluster is made under /var/lib/crm/clusters instead and
/// `<data-dir>/pgdata` links to it, so the data folder still leads to
/// everything.
pub(super) fn locate_pgdata(data_dir: &Path, run_as: Option<RunAs>) -> Result<PathBuf, Error> {
    let link = data_dir.join("pgdata");
    if fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
        return fs::read_link(&link).with_context(|| format!("reading the link {}", link.display()));
    }
    // The data folder itself is ours to open up to that user (see
    // `protect`); only the folders above it can block the way.
    let blocked = match run_as.and_then(|run_as| blocking_ancestor(data_dir, run_as)) {
        Some(blocked) if !link.exists() => blocked,
        _ => return Ok(link),
    };
    let name: String = data_dir
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let home = Path::new(RELOCATED_CLUSTERS).join(name.trim_matches('_'));
    fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let pgdata = home.join("pgdata");
    std::os::unix::fs::symlink(&pgdata, &link).with_context(|| format!("linking {}", link.display()))?;
    tracing::warn!(
        "the PostgreSQL user cannot enter {}; keeping the cluster in {} (linked from {})",
        blocked.display(),
        pgdata.display(),
        link.display()
    );
    Ok(pgdata)
}

/// Narrows the data folder and the folder holding the cluster (`home`: the
/// data folder, or its relocated home) and makes the socket folder
/// `<home>/run`, owned by the cluster's user and closed to everyone else.
/// Returns the socket folder.
pub(super) fn protect(data_dir: &Path, home: &Path, run_as: Option<RunAs>) -> Result<PathBuf, Error> {
    match run_as {
        // The cluster runs as us: nobody else needs to enter anything.
        None => set_mode(data_dir, 0o700)?,
        Some(run_as) => {
            if home != data_dir {
                set_mode(data_dir, 0o700)?;
            }
            let group_only = std::os::unix::fs::chown(home, None, Some(run_as.gid));
            group_only.with_context(|| format!("giving {} to the PostgreSQL user's group", home.display()))?;
            set_mode(home, 0o710)?;
        }
    }
    let socket_dir = home.join("run");
    fs::create_dir_all(&socket_dir).with_context(|| format!("creating {}", socket_dir.display()))?;
    set_mode(&socket_dir, 0o700)?;
    chown(&socket_dir, run_as)?;
    Ok(socket_dir)
}

/// Fails with advice when the socket's path is longer than the kernel
/// takes: with no TCP listener, the cluster would have no way in at all.
pub(super) fn check_socket_path(socket_dir: &Path, port: u16) -> Result<(), Error> {
    let socket = socket_dir.join(format!(".s.PGSQL.{port}"));
    let length = socket.as_os_str().len();
    if length > MAX_SOCKET_PATH {
        return Err(Error::SocketPathTooLong {
            socket,
            length,
            max: MAX_SOCKET_PATH,
        });
    }
    Ok(())
}

/// Writes our `pg_hba.conf` (0600, owned by the cluster's user), replacing
/// whatever `initdb` or an older version wrote. The new file is renamed
/// into place, so the cluster never reads half of it.
pub(super) fn write_pg_hba(pgdata: &Path, run_as: Option<RunAs>) -> Result<(), Error> {
    let path = pgdata.join("pg_hba.conf");
    let next = pgdata.join("pg_hba.conf.crm-new");
    let write = || -> std::io::Result<()> {
        let _ = fs::remove_file(&next);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&next)?;
        file.write_all(PG_HBA.as_bytes())?;
        file.sync_all()
    };
    write().with_context(|| format!("writing {}", next.display()))?;
    chown(&next, run_as)?;
    fs::rename(&next, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Opens the cluster's log for appending, readable by its owner only.
pub(super) fn open_log(path: &Path, run_as: Option<RunAs>) -> Result<fs::File, Error> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    // A log made by an older version keeps its mode through `open`.
    set_mode(path, 0o600)?;
    chown(path, run_as)?;
    Ok(log)
}

/// Opens `path` to read and write, made 0600 if missing; its content stays.
pub(super) fn open_private(path: &Path) -> Result<fs::File, Error> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Creates (or empties) `path` to write, mode 0600.
pub(super) fn create_private(path: &Path) -> Result<fs::File, Error> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))
}

/// Sets a file's or folder's permission bits.
pub(super) fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {} to mode {mode:o}", path.display()))
}

/// Gives `path` to the cluster's user when it runs as another account.
pub(super) fn chown(path: &Path, run_as: Option<RunAs>) -> Result<(), Error> {
    if let Some(run_as) = run_as {
        std::os::unix::fs::chown(path, Some(run_as.uid), Some(run_as.gid))
            .with_context(|| format!("giving {} to the PostgreSQL user", path.display()))?;
    }
    Ok(())
}

/// Fails with advice when `run_as` cannot walk down to the cluster.
pub(super) fn check_reachable(pgdata: &Path, run_as: RunAs) -> Result<(), Error> {
    if let Some(blocked) = blocking_ancestor(pgdata, run_as) {
        return Err(Error::Unreachable {
            mode: mode_of(&blocked),
            blocked,
            pgdata: pgdata.to_path_buf(),
        });
    }
    Ok(())
}

/// The first folder above `path` that `run_as` cannot enter, if any.
fn blocking_ancestor(path: &Path, run_as: RunAs) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .find(|ancestor| !can_enter(ancestor, run_as))
        .map(Path::to_path_buf)
}

/// Whether `run_as` may pass through `folder`: the owner's, the group's or
/// everyone's search bit, whichever class the user falls in (as the kernel
/// decides; the cluster runs with no supplementary groups).
fn can_enter(folder: &Path, run_as: RunAs) -> bool {
    let Ok(meta) = fs::metadata(folder) else { return false };
    let mode = meta.mode();
    if meta.uid() == run_as.uid {
        mode & 0o100 != 0
    } else if meta.gid() == run_as.gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// A folder's permission bits, for messages.
fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0)
}
