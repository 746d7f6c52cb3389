//! The CNI_* environment variables, read through an injected lookup.

use super::error::{CniError, CniResult, INVALID_ENV};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
}

impl Command {
    pub fn parse(text: &str) -> CniResult<Command> {
        Ok(match text {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "" => return Err(CniError::new(INVALID_ENV, "CNI_COMMAND is empty")),
            other => {
                return Err(CniError::new(
                    INVALID_ENV,
                    format!("unknown CNI_COMMAND: {other}"),
                ));
            }
        })
    }

    fn needs_container(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }

    fn needs_netns(self) -> bool {
        matches!(self, Command::Add | Command::Check)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
}

impl Env {
    pub fn parse(command: Command, lookup: &dyn Fn(&str) -> Option<String>) -> CniResult<Env> {
        let get = |name: &str| lookup(name).unwrap_or_default();
        let env = Env {
            command,
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args: get("CNI_ARGS"),
        };
        env.check_present()?;
        if command.needs_container() {
            if !matches_name_rule(&env.container_id) {
                return Err(invalid("CNI_CONTAINERID", &env.container_id, NAME_RULE));
            }
            if let Err(rule) = check_interface_name(&env.ifname) {
                return Err(invalid("CNI_IFNAME", &env.ifname, rule));
            }
        }
        Ok(env)
    }

    fn check_present(&self) -> CniResult<()> {
        let mut missing = Vec::new();
        if self.command.needs_container() {
            if self.container_id.is_empty() {
                missing.push("CNI_CONTAINERID");
            }
            if self.ifname.is_empty() {
                missing.push("CNI_IFNAME");
            }
        }
        if self.command.needs_netns() && self.netns.is_empty() {
            missing.push("CNI_NETNS");
        }
        if missing.is_empty() {
            return Ok(());
        }
        let msg = format!("required env variables missing: {}", missing.join(", "));
        Err(CniError::new(INVALID_ENV, msg))
    }
}

/// The spec's rule for container IDs and network names alike.
pub const NAME_RULE: &str = "must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$";

fn invalid(name: &str, value: &str, rule: &str) -> CniError {
    CniError::new(INVALID_ENV, format!("invalid {name} {value:?}: {rule}"))
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`: NAME_RULE.
pub fn matches_name_rule(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// The kernel's rules for interface names, as the spec restates them.
pub fn check_interface_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 15 {
        return Err("must be 1 to 15 bytes");
    }
    if name == "." || name == ".." {
        return Err("must not be . or ..");
    }
    // The kernel takes a name with '%' as a template ("eth%d") to fill in,
    // so no interface is ever called that.
    if name.bytes().any(|b| {
        b == b'/' || b == b':' || b == b'%' || b.is_ascii_whitespace() || b.is_ascii_control()
    }) {
        return Err("must not contain /, :, %, whitespace or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::error::INVALID_ENV;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            owned
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn full() -> Vec<(&'static str, &'static str)> {
        vec![
            ("CNI_CONTAINERID", "abc123"),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
        ]
    }

    #[test]
    fn add_reads_all_variables() {
        let env = Env::parse(Command::Add, &env_of(&full())).unwrap();
        assert_eq!(env.container_id, "abc123");
        assert_eq!(env.netns, "/var/run/netns/x");
        assert_eq!(env.ifname, "eth0");
    }

    #[test]
    fn add_names_every_missing_variable() {
        let error = Env::parse(Command::Add, &env_of(&[("CNI_IFNAME", "eth0")])).unwrap_err();
        assert_eq!(error.code, INVALID_ENV);
        assert_eq!(
            error.msg,
            "required env variables missing: CNI_CONTAINERID, CNI_NETNS"
        );
    }

    #[test]
    fn del_allows_empty_netns() {
        let env = Env::parse(
            Command::Del,
            &env_of(&[("CNI_CONTAINERID", "c"), ("CNI_IFNAME", "eth0")]),
        );
        assert!(env.is_ok());
    }

    #[test]
    fn status_gc_version_need_nothing() {
        for command in [Command::Status, Command::Gc] {
            assert!(Env::parse(command, &env_of(&[])).is_ok());
        }
    }

    #[test]
    fn bad_container_ids_are_rejected() {
        for id in ["-abc", "a/b", "a b", "..", "a\u{1}", "ä"] {
            let mut vars = full();
            vars[0].1 = id;
            let error = Env::parse(Command::Add, &env_of(&vars)).unwrap_err();
            assert_eq!(error.code, INVALID_ENV, "{id}");
            assert!(
                error.msg.starts_with("invalid CNI_CONTAINERID"),
                "{}",
                error.msg
            );
        }
    }

    #[test]
    fn bad_interface_names_are_rejected() {
        for name in [
            "0123456789abcdef",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "a\u{7f}",
            "eth%d",
            "%",
        ] {
            let mut vars = full();
            vars[2].1 = name;
            let error = Env::parse(Command::Add, &env_of(&vars)).unwrap_err();
            assert!(
                error.msg.starts_with("invalid CNI_IFNAME"),
                "{name}: {}",
                error.msg
            );
        }
        assert!(check_interface_name("0123456789abcde").is_ok());
    }

    #[test]
    fn commands_parse_and_unknown_is_code_4() {
        assert_eq!(Command::parse("CHECK").unwrap(), Command::Check);
        let error = Command::parse("ATTACH").unwrap_err();
        assert_eq!(
            (error.code, error.msg.as_str()),
            (INVALID_ENV, "unknown CNI_COMMAND: ATTACH")
        );
        let error = Command::parse("").unwrap_err();
        assert_eq!(
            (error.code, error.msg.as_str()),
            (INVALID_ENV, "CNI_COMMAND is empty")
        );
    }
}
