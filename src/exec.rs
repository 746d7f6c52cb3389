//! Runs a helper program and reads its stdout: posix_spawnp and a pipe,
//! a few hundred bytes of code where std::process::Command costs ~25 KB.
//! Used only by `doctor`.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The program's stdout when it ran and exited 0; None otherwise.
pub fn output(argv: &[&str]) -> Option<String> {
    let args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(*a).ok())
        .collect::<Option<_>>()?;
    let mut pointers: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    pointers.push(std::ptr::null_mut());
    let (read_end, write_end) = pipe()?;
    let pid = spawn(&pointers, &write_end)?;
    // Our copy of the write end must go, or the read below never sees EOF.
    drop(write_end);
    let mut text = String::new();
    let read = std::fs::File::from(read_end).read_to_string(&mut text);
    let status = wait(pid)?;
    let succeeded = read.is_ok() && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    succeeded.then_some(text)
}

/// The child's wait status; a wait interrupted by a signal (EINTR) is
/// waited again, and any other failure is no status at all (never exit 0).
fn wait(pid: libc::pid_t) -> Option<libc::c_int> {
    loop {
        let mut status = 0;
        // SAFETY: waits for our own child, writing only `status`.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        if waited == pid {
            return Some(status);
        }
        if waited < 0 && crate::errno::Errno::last().0 == libc::EINTR {
            continue;
        }
        return None;
    }
}

fn pipe() -> Option<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: both descriptors are fresh and owned by nothing else.
    unsafe { Some((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))) }
}

/// Starts argv[0] (searched in PATH) with stdout on `stdout` and stderr on
/// /dev/null. `argv` is NULL-terminated.
fn spawn(argv: &[*mut libc::c_char], stdout: &OwnedFd) -> Option<libc::pid_t> {
    let program = *argv.first()?;
    let mut pid: libc::pid_t = 0;
    // SAFETY: the actions object is initialised before use and destroyed
    // after, whatever happens in between; argv is NULL-terminated and
    // outlives the call; environ is the process environment.
    unsafe {
        let mut actions = std::mem::MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        if libc::posix_spawn_file_actions_init(actions.as_mut_ptr()) != 0 {
            return None;
        }
        let actions = actions.as_mut_ptr();
        let devnull = c"/dev/null".as_ptr();
        let prepared = libc::posix_spawn_file_actions_adddup2(actions, stdout.as_raw_fd(), 1) == 0
            && libc::posix_spawn_file_actions_addopen(actions, 2, devnull, libc::O_WRONLY, 0) == 0;
        let spawned = prepared
            && libc::posix_spawnp(
                &mut pid,
                program,
                actions,
                std::ptr::null(),
                argv.as_ptr(),
                environ(),
            ) == 0;
        libc::posix_spawn_file_actions_destroy(actions);
        spawned.then_some(pid)
    }
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
