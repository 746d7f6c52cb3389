//! Entering a pod's network namespace with setns, and getting back.

use crate::errno::Errno;
use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, RawFd};
use std::os::unix::fs::MetadataExt;

const CURRENT_NETNS: &str = "/proc/thread-self/ns/net";
const NSFS_MAGIC: libc::c_long = 0x6e73_6673;

/// An open handle on a network namespace file (e.g. /var/run/netns/X).
pub struct Netns {
    file: File,
}

impl Netns {
    /// Opens `path`; errno on failure (ENOENT when the namespace is gone,
    /// EINVAL when it is no namespace file at all). The path is first
    /// opened with O_PATH, which cannot block or touch a device (a FIFO
    /// would wait for a writer), and only a namespace file (nsfs) is then
    /// opened for real: setns and IFLA_NET_NS_FD refuse O_PATH descriptors.
    pub fn open(path: &str) -> Result<Netns, Errno> {
        let handle = open_path_only(path)?;
        if filesystem_type(&handle)? != NSFS_MAGIC {
            return Err(Errno(libc::EINVAL));
        }
        let mut reopen = String::from("/proc/self/fd/");
        reopen.push_str(&handle.as_raw_fd().to_string());
        let file = File::open(reopen)?;
        Ok(Netns { file })
    }

    /// The namespace's descriptor, borrowed for as long as this handle lives.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// True when this is the namespace the calling thread is in.
    pub fn is_current(&self) -> Result<bool, Errno> {
        let current = std::fs::metadata(CURRENT_NETNS)?;
        let this = self.file.metadata()?;
        Ok(current.dev() == this.dev() && current.ino() == this.ino())
    }

    /// Moves the calling thread into this namespace until the guard drops.
    /// EINVAL means the file is not a network namespace.
    pub fn enter(&self) -> Result<NetnsGuard, Errno> {
        let home = Netns::open(CURRENT_NETNS)?;
        setns(self.file.as_raw_fd())?;
        Ok(NetnsGuard {
            home,
            not_send: PhantomData,
        })
    }
}

/// std's OpenOptions cannot do this on musl: its O_ACCMODE includes
/// O_PATH, which std therefore masks out of custom flags.
fn open_path_only(path: &str) -> Result<File, Errno> {
    let path = std::ffi::CString::new(path).map_err(|_| Errno(libc::ENOENT))?;
    // SAFETY: a NUL-terminated path; the descriptor returned is owned by
    // the File alone.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(Errno::last());
        }
        Ok(File::from_raw_fd(fd))
    }
}

// f_type is a long on x86_64 and aarch64 but an unsigned int on armv7.
#[allow(clippy::unnecessary_cast)]
fn filesystem_type(file: &File) -> Result<libc::c_long, Errno> {
    let mut fs = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: fstatfs fills the whole statfs on success, which is checked
    // before it is read.
    unsafe {
        if libc::fstatfs(file.as_raw_fd(), fs.as_mut_ptr()) != 0 {
            return Err(Errno::last());
        }
        Ok(fs.assume_init().f_type as libc::c_long)
    }
}

fn setns(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: plain syscall on an fd we own; the plugin is single-threaded.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Returns the thread to its original namespace on drop. If that fails the
/// process aborts: going on in the pod's namespace would act on the wrong host.
///
/// setns moves only the calling thread, so the guard cannot leave it
/// (`!Send`), and it must be held: `let _ = ns.enter()?` would return at once.
#[must_use = "the thread returns to the host namespace when the guard drops"]
pub struct NetnsGuard {
    home: Netns,
    /// A raw pointer is neither Send nor Sync.
    not_send: PhantomData<*const ()>,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(errno) = setns(self.home.file.as_raw_fd()) {
            crate::log::line(&format!(
                "cannot return to the host network namespace: {errno}; aborting"
            ));
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespace_files_open() {
        assert!(Netns::open(CURRENT_NETNS).is_ok());
        for path in ["/dev/null", "/proc/self/status", "/"] {
            assert_eq!(Netns::open(path).err(), Some(Errno(libc::EINVAL)), "{path}");
        }
        assert_eq!(
            Netns::open("/nonexistent/netns").err(),
            Some(Errno(libc::ENOENT))
        );
    }
}
