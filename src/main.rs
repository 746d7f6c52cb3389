//! mycelium-cni: attaches container network namespaces to the Mycelium
//! IPv6 overlay. Only this file touches stdio and the exit code.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod cli;
mod cni;
mod errno;
mod exec;
#[cfg(test)]
mod fuzz;
mod log;
mod netlink;
mod netns;
mod plugin;
mod regular_file;
mod sysctl;

use std::io::Write;

/// Writes and flushes, ignoring a closed stream (print! would panic).
fn emit(mut stream: impl Write, text: &str) {
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
}

/// Without CNI_COMMAND: a human at a shell (or an init container).
fn human(args: Vec<String>) {
    let about = concat!(
        "mycelium-cni ",
        env!("CARGO_PKG_VERSION"),
        ": CNI plugin attaching containers to the Mycelium IPv6 overlay (CNI spec 0.3.0-1.1.0)\n"
    );
    match args.first().map(String::as_str) {
        None => emit(std::io::stderr(), about),
        Some("--version") => emit(std::io::stdout(), about),
        Some("--help" | "-h" | "help") => emit(std::io::stdout(), &[about, cli::USAGE].concat()),
        Some(command) => {
            let outcome = cli::run(command, args.get(1..).unwrap_or(&[]));
            emit(std::io::stdout(), &outcome.stdout);
            std::process::exit(outcome.exit_code);
        }
    }
}

/// CNI_COMMAND without allocating (std::env::var copies it): VERSION runs
/// before every command and should cost no more than an empty program.
/// Set but empty (or not UTF-8) is a runtime's mistake, answered with an
/// error document, not the human help.
fn cni_command() -> Option<&'static str> {
    // SAFETY: getenv returns NULL or a NUL-terminated string in the
    // environment, which nothing in this single-threaded program modifies.
    let value = unsafe { libc::getenv(c"CNI_COMMAND".as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated, lives as long as the process.
    let value = unsafe { std::ffi::CStr::from_ptr(value) };
    Some(value.to_str().unwrap_or("(not UTF-8)"))
}

fn main() {
    let Some(command) = cni_command() else {
        human(std::env::args().skip(1).collect());
        return;
    };
    let lookup = |name: &str| std::env::var(name).ok();
    // Unbuffered, straight on fds 0 and 1: std's stdin/stdout would first
    // allocate their buffers.
    let (stdin, stdout) = (raw_fd(0), raw_fd(1));
    let outcome = cni::dispatch(command, &lookup, &mut &*stdin, &plugin::MyceliumPlugin);
    if !outcome.stdout.is_empty() {
        emit(&*stdout, &outcome.stdout);
        emit(&*stdout, "\n");
    }
    std::process::exit(outcome.exit_code);
}

fn raw_fd(fd: i32) -> std::mem::ManuallyDrop<std::fs::File> {
    // SAFETY: fds 0-2 are open for the whole process (std's start-up
    // reopens any that are closed on /dev/null); ManuallyDrop keeps the
    // File from closing them.
    std::mem::ManuallyDrop::new(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}
