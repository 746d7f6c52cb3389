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
mod netlink;
mod netns;
mod plugin;
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

fn main() {
    let command = std::env::var("CNI_COMMAND").ok().filter(|c| !c.is_empty());
    let Some(command) = command else {
        human(std::env::args().skip(1).collect());
        return;
    };
    let lookup = |name: &str| std::env::var(name).ok();
    let outcome = cni::dispatch(
        &command,
        &lookup,
        &mut std::io::stdin().lock(),
        &plugin::MyceliumPlugin,
    );
    if !outcome.stdout.is_empty() {
        emit(std::io::stdout(), &(outcome.stdout + "\n"));
    }
    std::process::exit(outcome.exit_code);
}
