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

mod cni;
mod errno;
#[cfg(test)]
mod fuzz;
mod netlink;
mod netns;
mod plugin;
mod sysctl;

use std::io::Write;

const ABOUT: &str = concat!(
    "mycelium-cni ",
    env!("CARGO_PKG_VERSION"),
    ": CNI plugin attaching containers to the Mycelium IPv6 overlay (CNI spec 0.3.0-1.1.0)"
);

fn main() {
    let command = std::env::var("CNI_COMMAND").ok().filter(|c| !c.is_empty());
    let Some(command) = command else {
        if std::env::args().nth(1).as_deref() == Some("--version") {
            println!("{ABOUT}");
        } else {
            eprintln!("{ABOUT}");
        }
        return;
    };
    let lookup = |name: &str| std::env::var(name).ok();
    let outcome = cni::dispatch(
        &command,
        &lookup,
        &mut std::io::stdin().lock(),
        &plugin::MyceliumPlugin,
    );
    let mut stdout = std::io::stdout().lock();
    if !outcome.stdout.is_empty() {
        let _ = writeln!(stdout, "{}", outcome.stdout);
    }
    let _ = stdout.flush();
    std::process::exit(outcome.exit_code);
}
