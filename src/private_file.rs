//! Files ecsrdp writes for the user (a snapshot, an `.rdp` file, a recording of the session, the
//! trust store):
//! each holds something of the session, so it is the user's alone (mode 0600, also when it
//! replaced an older file), and a symbolic link in its place is refused rather than followed,
//! so that nobody can point ecsrdp's write at another file of the user's.

use std::fs::File;
use std::io;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Creates (or empties) the file at `path` for writing, private to its owner.
pub fn create(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            // O_NOFOLLOW's refusal says "too many levels of symbolic links": say what it is.
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(
                    e.kind(),
                    "it is a symbolic link, which ecsrdp does not follow",
                )
            } else {
                e
            }
        })?;
    // An existing file keeps its mode through O_CREAT: make it private now.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Writes a whole file: `write` fills a private temporary file beside `path`, which is flushed
/// to disk and renamed over `path`, so that a failure (a full disk, a crash) leaves the old file
/// or none, never a truncated one. A symbolic link at `path` is refused, as by [`create`].
pub fn replace(path: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is a symbolic link, which ecsrdp does not follow",
        ));
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = create(&temp)
        .and_then(|mut file| write(&mut file).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        // Best effort: the error that matters is the one returned.
        std::fs::remove_file(&temp).ok();
    }
    written?;
    // The rename itself is durable only once the directory is.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.png");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(create(&path).unwrap());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 0);

        let target = dir.path().join("precious");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("link.png");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let refused = create(&link).unwrap_err();
        assert!(refused.to_string().contains("symbolic link"), "{refused}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.png");
        std::fs::write(&path, "old").unwrap();
        let failed = replace(&path, |file| {
            std::io::Write::write_all(file, b"half")?;
            Err(io::Error::other("the disk is full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
        replace(&path, |file| std::io::Write::write_all(file, b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let link = dir.path().join("link.png");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let refused = replace(&link, |_| Ok(())).unwrap_err();
        assert!(refused.to_string().contains("symbolic link"), "{refused}");
    }
}
