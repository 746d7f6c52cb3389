//! Runs a helper program and reads its stdout: posix_spawnp and a pipe,
//! a few hundred bytes of code where std::process::Command costs ~25 KB.
//! Used only by `doctor`.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::FromRawFd;

/// The program's stdout when it ran and exited 0; None otherwise.
pub fn output(argv: &[&str]) -> Option<String> {
    let args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(*a).ok())
        .collect::<Option<_>>()?;
    let program = args.first()?.as_ptr();
    let mut pointers: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    pointers.push(std::ptr::null_mut());
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    let [read_end, write_end] = fds;
    // SAFETY: read_end is a fresh descriptor owned by nothing else.
    let mut reader = unsafe { std::fs::File::from_raw_fd(read_end) };
    let mut pid: libc::pid_t = 0;
    // SAFETY: the actions object is initialised before use and destroyed
    // after; argv is NUL-terminated and outlives the call; environ is the
    // process environment.
    let spawned = unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut actions);
        libc::posix_spawn_file_actions_adddup2(&mut actions, write_end, 1);
        libc::posix_spawn_file_actions_addopen(
            &mut actions,
            2,
            c"/dev/null".as_ptr(),
            libc::O_WRONLY,
            0,
        );
        let rc = libc::posix_spawnp(
            &mut pid,
            program,
            &actions,
            std::ptr::null(),
            pointers.as_ptr(),
            environ(),
        );
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::close(write_end);
        rc == 0
    };
    if !spawned {
        return None;
    }
    let mut text = String::new();
    let read = reader.read_to_string(&mut text);
    let mut status = 0;
    // SAFETY: waits for the child spawned above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let succeeded = read.is_ok() && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    succeeded.then_some(text)
}

fn environ() -> *const *mut libc::c_char {
    unsafe extern "C" {
        static environ: *const *mut libc::c_char;
    }
    // SAFETY: reading the C runtime's environment pointer.
    unsafe { environ }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_stdout_and_reports_failure() {
        assert_eq!(
            super::output(&["echo", "hello"]).as_deref(),
            Some("hello\n")
        );
        assert_eq!(super::output(&["false"]), None);
        assert_eq!(super::output(&["/nonexistent/program"]), None);
    }
}
