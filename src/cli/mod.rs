//! The human commands of the same binary, used when it runs without
//! CNI_COMMAND: install/uninstall, doctor, list. Like the CNI side, they
//! return what to print and the exit code; main.rs prints.

mod conflist;
mod doctor;
mod doctor_egress;
mod doctor_ingress;
mod install;
mod list;
mod report;

/// Exit codes for scripts: 0 fine, 1 problems found or the action failed,
/// 2 bad usage.
pub const EXIT_OK: i32 = 0;
pub const EXIT_PROBLEM: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

pub struct Outcome {
    pub stdout: String,
    pub exit_code: i32,
}

impl Outcome {
    fn usage(msg: &str) -> Outcome {
        let mut stdout = String::from(msg);
        stdout.push('\n');
        stdout.push_str(USAGE);
        Outcome {
            stdout,
            exit_code: EXIT_USAGE,
        }
    }
}

pub const USAGE: &str = "usage:
  mycelium-cni install [--bin-dir DIR] [--conf-dir DIR] [--interface NAME]
                       [--service-cidr CIDR]... [--name NAME] [--wait]
                       [--overlay-ingress open|replies] [--overlay-allow CIDR]...
                       [--egress nat|overlay] [--ipv4-pool CIDR]
                       [--no-portmap] [--no-bandwidth]
  mycelium-cni uninstall [--bin-dir DIR] [--conf-dir DIR] [--keep-filter]
  mycelium-cni doctor [--interface NAME] [--conf PATH] [--bin-dir DIR]
  mycelium-cni list [--interface NAME] [--conf PATH]
  mycelium-cni --version
  mycelium-cni COMMAND --help
As a CNI plugin it is run by the container runtime with CNI_COMMAND set.
";

const INSTALL_HELP: &str = "usage: mycelium-cni install [OPTION]...
Copies this binary into the CNI bin directory, then writes the conflist into
the CNI config directory: loopback, mycelium-cni, then portmap (hostPort) and
bandwidth (the pod bandwidth annotations) when their binaries are in the bin
directory. Says which plugins it left out and why.
  --bin-dir DIR            CNI plugin directory (default /opt/cni/bin)
  --conf-dir DIR           CNI config directory (default /etc/cni/net.d)
  --interface NAME         the Mycelium daemon's TUN (default mycelium)
  --service-cidr CIDR      also route this IPv6 CIDR via the node (repeatable)
  --name NAME              the network name (default mycelium)
  --wait                   write the conflist only once the interface is ready
  --overlay-ingress open|replies   who may reach the pods from the overlay
  --overlay-allow CIDR     with replies, also let this prefix in (repeatable)
  --no-portmap             leave portmap out (hostPort will not work)
  --no-bandwidth           leave bandwidth out (bandwidth annotations ignored)
";

const UNINSTALL_HELP: &str = "usage: mycelium-cni uninstall [OPTION]...
Removes the conflist, then the binary, then the source filter's nf_tables table.
  --bin-dir DIR            CNI plugin directory (default /opt/cni/bin)
  --conf-dir DIR           CNI config directory (default /etc/cni/net.d)
  --keep-filter            leave the source filter table in place
";

const DOCTOR_HELP: &str = "usage: mycelium-cni doctor [OPTION]...
Checks the node as ADD needs it and prints each finding (ok, warn, FAIL) with
its fix. Exit 0: nothing failed; 1: something failed; 2: bad usage.
  --interface NAME         the Mycelium interface (default: the conflist's)
  --conf PATH              the conflist (default /etc/cni/net.d/10-mycelium.conflist)
  --bin-dir DIR            CNI plugin directory (default /opt/cni/bin)
";

const LIST_HELP: &str = "usage: mycelium-cni list [OPTION]...
Prints every attachment on this node, from the kernel alone, and marks those
whose address is outside the node's current /64.
  --interface NAME         the Mycelium interface (default: the conflist's)
  --conf PATH              the conflist (default /etc/cni/net.d/10-mycelium.conflist)
";

/// `--key value` and `--key=value` options, with flags (no value) listed.
struct Options {
    pairs: Vec<(String, String)>,
}

impl Options {
    fn parse(args: &[String], keys: &[&str], flags: &[&str]) -> Result<Options, String> {
        let mut pairs = Vec::new();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let (key, inline) = match arg.split_once('=') {
                Some((key, value)) => (key, Some(value.to_string())),
                None => (arg.as_str(), None),
            };
            let name = key.strip_prefix("--").unwrap_or("");
            if flags.contains(&name) && inline.is_none() {
                pairs.push((name.to_string(), String::new()));
            } else if keys.contains(&name) {
                let value = match inline {
                    Some(value) => value,
                    None => rest
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("{key} needs a value"))?,
                };
                pairs.push((name.to_string(), value));
            } else {
                return Err(format!("unknown option {arg}"));
            }
        }
        Ok(Options { pairs })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn has(&self, flag: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == flag)
    }
}

/// The binary's name, and the conflist `type` that runs it.
pub const BINARY_NAME: &str = "mycelium-cni";
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";
pub const CONFLIST_NAME: &str = "10-mycelium.conflist";

/// Runs `mycelium-cni COMMAND ARGS...`.
pub fn run(command: &str, args: &[String]) -> Outcome {
    let help = match command {
        "install" => INSTALL_HELP,
        "uninstall" => UNINSTALL_HELP,
        "doctor" => DOCTOR_HELP,
        "list" => LIST_HELP,
        _ => return Outcome::usage(&format!("unknown command {command:?}")),
    };
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        return Outcome {
            stdout: help.into(),
            exit_code: EXIT_OK,
        };
    }
    let parsed = match command {
        "install" => Options::parse(
            args,
            &[
                "bin-dir",
                "conf-dir",
                "interface",
                "service-cidr",
                "name",
                "overlay-ingress",
                "overlay-allow",
                "egress",
                "ipv4-pool",
            ],
            &["wait", "no-portmap", "no-bandwidth"],
        ),
        "uninstall" => Options::parse(args, &["bin-dir", "conf-dir"], &["keep-filter"]),
        "doctor" => Options::parse(args, &["interface", "conf", "bin-dir"], &[]),
        _ => Options::parse(args, &["interface", "conf"], &[]),
    };
    let options = match parsed {
        Ok(options) => options,
        Err(msg) => return Outcome::usage(&msg),
    };
    match command {
        "install" => install::install(&options),
        "uninstall" => install::uninstall(&options),
        "doctor" => doctor::doctor(&options),
        _ => list::list(&options),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_take_both_spellings_and_flags() {
        let keys = ["bin-dir", "service-cidr"];
        let parsed = Options::parse(
            &args(&[
                "--bin-dir",
                "/a",
                "--service-cidr=fd00::/112",
                "--wait",
                "--service-cidr",
                "fd01::/112",
            ]),
            &keys,
            &["wait"],
        )
        .unwrap();
        assert_eq!(parsed.get("bin-dir"), Some("/a"));
        assert_eq!(parsed.all("service-cidr"), ["fd00::/112", "fd01::/112"]);
        assert!(parsed.has("wait"));
        assert!(!parsed.has("other"));
    }

    #[test]
    fn bad_usage_is_exit_2() {
        assert!(Options::parse(&args(&["--bin-dir"]), &["bin-dir"], &[]).is_err());
        assert!(Options::parse(&args(&["--nope"]), &["bin-dir"], &[]).is_err());
        assert!(Options::parse(&args(&["stray"]), &["bin-dir"], &[]).is_err());
        assert_eq!(run("frobnicate", &[]).exit_code, EXIT_USAGE);
        assert_eq!(run("list", &args(&["--x"])).exit_code, EXIT_USAGE);
    }

    #[test]
    fn every_command_prints_its_help_and_exits_0() {
        for (command, first) in [
            ("install", "usage: mycelium-cni install"),
            ("uninstall", "usage: mycelium-cni uninstall"),
            ("doctor", "usage: mycelium-cni doctor"),
            ("list", "usage: mycelium-cni list"),
        ] {
            for flag in ["--help", "-h"] {
                let outcome = run(command, &args(&["--bin-dir", "/x", flag]));
                assert_eq!(outcome.exit_code, EXIT_OK, "{command} {flag}");
                assert!(outcome.stdout.starts_with(first), "{}", outcome.stdout);
            }
        }
        assert!(INSTALL_HELP.contains("--no-portmap") && INSTALL_HELP.contains("--no-bandwidth"));
        assert_eq!(run("frobnicate", &args(&["--help"])).exit_code, EXIT_USAGE);
    }
}
