//! Files named by configuration (`logFile`, `doctor --conf`), opened only
//! when they are regular files and never in a way that blocks: a FIFO
//! without a reader, a device, a directory or a link to stdout, named by
//! mistake or by a hostile config, must neither hang nor corrupt a command.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// O_NONBLOCK: opening a FIFO never waits for its other end (it fails with
/// ENXIO for writing). O_NOCTTY: a terminal never becomes ours.
const NEVER_BLOCK: i32 = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

/// Why a file was not used.
#[cfg_attr(test, derive(Debug))]
pub enum Refused {
    Io(io::Error),
    /// Not a regular file: what it is instead.
    NotRegular(&'static str),
    /// Larger than the bound given.
    TooLarge(u64),
}

impl From<io::Error> for Refused {
    fn from(error: io::Error) -> Self {
        Refused::Io(error)
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Io(error) => error.fmt(f),
            Refused::NotRegular(what) => write!(f, "is {what}, not a regular file"),
            Refused::TooLarge(max) => write!(f, "is larger than {max} bytes"),
        }
    }
}

/// What `st_mode` says the file is, unless it is a regular file.
fn require_regular(mode: libc::mode_t) -> Result<(), Refused> {
    let what = match mode & libc::S_IFMT {
        libc::S_IFREG => return Ok(()),
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symbolic link (not followed)",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        _ => "a device",
    };
    Err(Refused::NotRegular(what))
}

/// `st_mode` of the path (a symbolic link followed or not), or of an open
/// file. libc directly: std's metadata for a path not followed costs 1.3 KB
/// of binary.
fn mode_of_path(path: &str, follow: bool) -> io::Result<libc::mode_t> {
    let path =
        std::ffi::CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    let stat_of = if follow { libc::stat } else { libc::lstat };
    // SAFETY: a NUL-terminated path and room for one struct stat.
    if unsafe { stat_of(path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: (l)stat succeeded and filled it.
    Ok(unsafe { stat.assume_init() }.st_mode)
}

fn mode_of_file(file: &File) -> io::Result<libc::mode_t> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: an open descriptor and room for one struct stat.
    if unsafe { libc::fstat(file.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded and filled it.
    Ok(unsafe { stat.assume_init() }.st_mode)
}

/// Opens `path` for appending, creating it when missing, if it is a regular
/// file. A symbolic link is not followed, also not in a race (O_NOFOLLOW).
pub fn open_append(path: &str) -> Result<File, Refused> {
    // Looked at before opening, so that a device is never opened at all.
    match mode_of_path(path, false) {
        Ok(mode) => require_regular(mode)?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error.into()),
    }
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(NEVER_BLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    // Again on what was opened: the path may have changed in between.
    require_regular(mode_of_file(&file)?)?;
    Ok(file)
}

/// The content of the regular file at `path` (symbolic links followed), if
/// it holds at most `max` bytes; more is an error, read no further.
pub fn read_bounded(path: &str, max: u64) -> Result<Vec<u8>, Refused> {
    require_regular(mode_of_path(path, true)?)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(NEVER_BLOCK)
        .open(path)?;
    require_regular(mode_of_file(&file)?)?;
    // By hand, not `take(max + 1).read_to_end`: 1.4 KB less binary.
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = read_retrying(&file, &mut chunk)?;
        if n == 0 {
            return Ok(bytes);
        }
        bytes.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if bytes.len() as u64 > max {
            return Err(Refused::TooLarge(max));
        }
    }
}

fn read_retrying(mut file: &File, chunk: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(chunk) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
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
