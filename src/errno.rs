//! errno values, printed without the "(os error N)" suffix std adds.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's errno after a failed libc call.
    pub fn last() -> Errno {
        Errno::from(std::io::Error::last_os_error())
    }
}

impl From<std::io::Error> for Errno {
    fn from(error: std::io::Error) -> Errno {
        Errno(error.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SAFETY: strerror returns a pointer to a NUL-terminated static or
        // thread-local string, valid until the next call on this thread.
        let text = unsafe { std::ffi::CStr::from_ptr(libc::strerror(self.0)) };
        f.write_str(&text.to_string_lossy())
    }
}

#[cfg(test)]
mod tests {
    use super::Errno;

    #[test]
    fn names_common_errors() {
        assert!(Errno(libc::EEXIST).to_string().contains("exists"));
        assert!(!Errno(libc::ENODEV).to_string().contains("os error"));
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(Errno::from(io), Errno(libc::ENOENT));
        let custom = std::io::Error::other("no errno");
        assert_eq!(Errno::from(custom), Errno(libc::EIO));
    }
}
