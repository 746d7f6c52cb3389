//! Entering a pod's network namespace with setns, and getting back.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;

const CURRENT_NETNS: &str = "/proc/thread-self/ns/net";

/// An open handle on a network namespace file (e.g. /var/run/netns/X).
pub struct Netns {
    file: File,
}

impl Netns {
    /// Opens `path`; errno on failure (ENOENT when the namespace is gone).
    pub fn open(path: &str) -> Result<Netns, i32> {
        let file = File::open(path).map_err(|error| error.raw_os_error().unwrap_or(libc::EIO))?;
        Ok(Netns { file })
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// True when this is the namespace the calling thread is in.
    pub fn is_current(&self) -> Result<bool, i32> {
        let errno = |error: std::io::Error| error.raw_os_error().unwrap_or(libc::EIO);
        let current = std::fs::metadata(CURRENT_NETNS).map_err(errno)?;
        let this = self.file.metadata().map_err(errno)?;
        Ok(current.dev() == this.dev() && current.ino() == this.ino())
    }

    /// Moves the calling thread into this namespace until the guard drops.
    /// EINVAL means the file is not a network namespace.
    pub fn enter(&self) -> Result<NetnsGuard, i32> {
        let home = Netns::open(CURRENT_NETNS)?;
        setns(self.fd())?;
        Ok(NetnsGuard { home })
    }
}

fn setns(fd: RawFd) -> Result<(), i32> {
    // SAFETY: plain syscall on an fd we own; the plugin is single-threaded.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(crate::errno::last())
    }
}

/// Returns the thread to its original namespace on drop. If that fails the
/// process aborts: going on in the pod's namespace would act on the wrong host.
pub struct NetnsGuard {
    home: Netns,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(errno) = setns(self.home.fd()) {
            eprintln!(
                "mycelium-cni: cannot return to the host network namespace: {}; aborting",
                crate::errno::describe(errno)
            );
            std::process::abort();
        }
    }
}
