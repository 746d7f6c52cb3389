//! errno to text without the "(os error N)" suffix std adds.

pub fn describe(errno: i32) -> String {
    // SAFETY: strerror returns a pointer to a NUL-terminated static or
    // thread-local string, valid until the next call on this thread.
    let text = unsafe { std::ffi::CStr::from_ptr(libc::strerror(errno)) };
    text.to_string_lossy().into_owned()
}

pub fn last() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_common_errors() {
        assert!(super::describe(libc::EEXIST).contains("exists"));
        assert!(!super::describe(libc::ENODEV).contains("os error"));
    }
}
