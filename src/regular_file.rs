//! Files named by configuration (`logFile`, `doctor --conf`), opened only
//! when they are regular files and never in a way that blocks: a FIFO
//! without a reader, a device, a directory or a link to stdout, named by
//! mistake or by a hostile config, must neither hang nor corrupt a command.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

/// O_NONBLOCK: opening a FIFO never waits for its other end (it fails with
/// ENXIO for writing). O_NOCTTY: a terminal never becomes ours.
const NEVER_BLOCK: i32 = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

fn require_regular(metadata: &Metadata) -> io::Result<()> {
    let kind = metadata.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link (not followed)"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a device"
    };
    Err(io::Error::other(format!("is {what}, not a regular file")))
}

/// Opens `path` for appending, creating it when missing, if it is a regular
/// file. A symbolic link is not followed, also not in a race (O_NOFOLLOW).
pub fn open_append(path: &str) -> io::Result<File> {
    // Looked at before opening, so that a device is never opened at all.
    match std::fs::symlink_metadata(path) {
        Ok(metadata) => require_regular(&metadata)?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(NEVER_BLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    // Again on what was opened: the path may have changed in between.
    require_regular(&file.metadata()?)?;
    Ok(file)
}

/// The content of the regular file at `path` (symbolic links followed), if
/// it holds at most `max` bytes; more is an error, read no further.
pub fn read_bounded(path: &str, max: u64) -> io::Result<Vec<u8>> {
    require_regular(&std::fs::metadata(path)?)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(NEVER_BLOCK)
        .open(path)?;
    require_regular(&file.metadata()?)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::other(format!("is larger than {max} bytes")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mcni-rf-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn text(path: &std::path::Path) -> String {
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn appends_only_to_regular_files() {
        let dir = scratch("append");
        let log = dir.join("a.log");
        open_append(&text(&log)).unwrap();
        assert!(log.is_file(), "created when missing");
        let fifo = dir.join("fifo");
        let c_fifo = std::ffi::CString::new(text(&fifo)).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
        let link = dir.join("link");
        std::os::unix::fs::symlink(&log, &link).unwrap();
        for (path, said) in [
            (text(&fifo), "is a FIFO, not a regular file"),
            (
                text(&link),
                "is a symbolic link (not followed), not a regular file",
            ),
            (text(&dir), "is a directory, not a regular file"),
            ("/dev/null".to_string(), "is a device, not a regular file"),
            (
                "/dev/stdout".to_string(),
                "is a symbolic link (not followed), not a regular file",
            ),
        ] {
            let error = open_append(&path).unwrap_err();
            assert_eq!(error.to_string(), said, "{path}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_bounded_regular_files_only() {
        let dir = scratch("read");
        let file = dir.join("c.conflist");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_bounded(&text(&file), 5).unwrap(), b"12345");
        let error = read_bounded(&text(&file), 4).unwrap_err();
        assert_eq!(error.to_string(), "is larger than 4 bytes");
        let error = read_bounded("/dev/zero", 4).unwrap_err();
        assert_eq!(error.to_string(), "is a device, not a regular file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
