//! The CNI protocol side: env, stdin config, results, errors, versions, and
//! the dispatcher that turns one invocation into one plugin command.

pub mod args;
pub mod config;
pub mod egress;
pub mod env;
pub mod error;
mod json;
pub mod logfile;
pub mod result;
pub mod version;

use config::NetConf;
use env::{Command, Env};
use error::{CniError, CniResult, INCOMPATIBLE_VERSION, INVALID_CONFIG, IO_FAILURE};
use std::borrow::Cow;
use std::io::Read;

/// The commands a plugin implements; the dispatcher has parsed and
/// checked env and config before calling them.
pub trait Plugin {
    /// Returns the result JSON.
    fn add(&self, env: &Env, conf: &NetConf) -> CniResult<String>;
    fn del(&self, env: &Env, conf: &NetConf) -> CniResult<()>;
    fn check(&self, env: &Env, conf: &NetConf) -> CniResult<()>;
    fn status(&self, conf: &NetConf) -> CniResult<()>;
    /// `valid` is GC's list of attachments to keep.
    fn gc(&self, conf: &NetConf, valid: &[config::ValidAttachment]) -> CniResult<()>;
}

/// What the process prints on stdout and how it exits.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Borrowed for VERSION, which runtimes call before every command:
    /// answering it allocates nothing.
    pub stdout: Cow<'static, str>,
    pub exit_code: i32,
}

/// No real config comes near this (a GC list of 10,000 attachments is about
/// 1 MiB); more is refused instead of buffered.
const MAX_STDIN: u64 = 4 << 20;

/// Runs one CNI invocation. `command` is CNI_COMMAND's value.
pub fn dispatch(
    command: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    plugin: &dyn Plugin,
) -> Outcome {
    // Runtimes call VERSION before every command: answer without reading
    // stdin (its only content would be a cniVersion this answer ignores).
    if command == "VERSION" {
        return Outcome {
            stdout: Cow::Borrowed(version::VERSION_JSON),
            exit_code: 0,
        };
    }
    let started = std::time::Instant::now();
    let mut input = Vec::new();
    let read = stdin.take(MAX_STDIN + 1).read_to_end(&mut input);
    let invocation = match read {
        Ok(n) if n as u64 > MAX_STDIN => Err(CniError::new(
            INVALID_CONFIG,
            "invalid config: stdin is larger than 4 MiB",
        )),
        Ok(_) => Invocation::parse(command, lookup, &input),
        Err(error) => Err(CniError::new(
            IO_FAILURE,
            format!("read config from stdin: {error}"),
        )),
    };
    let (outcome, log) = match invocation {
        Ok(mut invocation) => {
            let log = invocation.take_log();
            (invocation.execute(plugin), log)
        }
        Err(error) => (Err(error), None),
    };
    if let Some((file, what)) = log {
        let (failed, text) = match &outcome {
            Ok(_) => (false, "ok".to_string()),
            Err(error) => (true, format!("error {}: {}", error.code, error.msg)),
        };
        file.record(command, &what, failed, &text, started.elapsed());
    }
    match outcome {
        Ok(stdout) => Outcome {
            stdout: Cow::Owned(stdout),
            exit_code: 0,
        },
        Err(error) => {
            let cni_version =
                config::peek_version(&input).unwrap_or_else(|| version::LATEST.into());
            Outcome {
                stdout: Cow::Owned(error.to_json(&cni_version)),
                exit_code: 1,
            }
        }
    }
}

/// One command with its environment and config, parsed and checked.
struct Invocation {
    command: Command,
    env: Env,
    conf: NetConf,
    /// The whole config, for the keys only GC reads.
    value: serde_json::Value,
}

impl Invocation {
    fn parse(
        command: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
        input: &[u8],
    ) -> CniResult<Invocation> {
        let command = Command::parse(command)?;
        let env = Env::parse(command, lookup)?;
        let value = config::parse_json(input)?;
        let conf = NetConf::from_value(&value)?;
        Ok(Invocation {
            command,
            env,
            conf,
            value,
        })
    }

    /// The log file, if configured, and what its line names: the
    /// attachment, or the network for STATUS and GC.
    fn take_log(&mut self) -> Option<(logfile::LogFile, String)> {
        let file = self.conf.log.take()?;
        let (name, env) = (&self.conf.name, &self.env);
        let what = if env.container_id.is_empty() {
            name.clone()
        } else {
            [name.as_str(), &env.container_id, &env.ifname].join("/")
        };
        Some((file, what))
    }

    fn execute(&self, plugin: &dyn Plugin) -> CniResult<String> {
        let (command, env, conf) = (self.command, &self.env, &self.conf);
        require_version(command, &conf.cni_version)?;
        if matches!(command, Command::Add | Command::Check) {
            args::check(&env.args, conf.args.as_ref())?;
        }
        // Everything ADD can refuse is refused before it creates anything.
        if command == Command::Add {
            result::check_chainable(conf.prev_result.as_ref())?;
        }
        match command {
            Command::Add => plugin.add(env, conf),
            Command::Del => plugin.del(env, conf).map(|()| String::new()),
            Command::Check => plugin.check(env, conf).map(|()| String::new()),
            Command::Status => plugin.status(conf).map(|()| String::new()),
            Command::Gc => {
                let valid = config::valid_attachments(&self.value)?;
                plugin.gc(conf, &valid).map(|()| String::new())
            }
        }
    }
}

/// CHECK came with 0.4.0, STATUS and GC with 1.1.0.
fn require_version(command: Command, cni_version: &str) -> CniResult<()> {
    let (name, minimum) = match command {
        Command::Check => ("CHECK", "0.4.0"),
        Command::Status => ("STATUS", "1.1.0"),
        Command::Gc => ("GC", "1.1.0"),
        _ => return Ok(()),
    };
    if version::at_least(cni_version, minimum) {
        return Ok(());
    }
    let msg =
        format!("config version {cni_version} does not support {name} (needs {minimum} or newer)");
    Err(CniError::new(INCOMPATIBLE_VERSION, msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<String>>,
    }

    impl Plugin for Recorder {
        fn add(&self, env: &Env, conf: &NetConf) -> CniResult<String> {
            self.calls
                .borrow_mut()
                .push(format!("add {} {}", env.container_id, conf.name));
            Ok("{\"added\":true}".into())
        }
        fn del(&self, env: &Env, _: &NetConf) -> CniResult<()> {
            self.calls
                .borrow_mut()
                .push(format!("del {}", env.container_id));
            Err(CniError::new(error::IO_FAILURE, "boom"))
        }
        fn check(&self, _: &Env, _: &NetConf) -> CniResult<()> {
            self.calls.borrow_mut().push("check".into());
            Ok(())
        }
        fn status(&self, _: &NetConf) -> CniResult<()> {
            self.calls.borrow_mut().push("status".into());
            Ok(())
        }
        fn gc(&self, _: &NetConf, valid: &[config::ValidAttachment]) -> CniResult<()> {
            self.calls.borrow_mut().push(format!("gc {}", valid.len()));
            Ok(())
        }
    }

    fn lookup(name: &str) -> Option<String> {
        let value = match name {
            "CNI_CONTAINERID" => "c1",
            "CNI_NETNS" => "/var/run/netns/p",
            "CNI_IFNAME" => "eth0",
            _ => return None,
        };
        Some(value.into())
    }

    fn call(command: &str, config: &str, plugin: &Recorder) -> Outcome {
        dispatch(command, &lookup, &mut config.as_bytes(), plugin)
    }

    const CONF_040: &str = r#"{"cniVersion":"0.4.0","name":"net1","type":"mycelium-cni"}"#;
    const CONF_110: &str = r#"{"cniVersion":"1.1.0","name":"net1","type":"mycelium-cni","cni.dev/valid-attachments":[]}"#;

    #[test]
    fn add_prints_result_and_exits_zero() {
        let plugin = Recorder::default();
        let outcome = call("ADD", CONF_040, &plugin);
        assert_eq!(
            outcome,
            Outcome {
                stdout: "{\"added\":true}".into(),
                exit_code: 0
            }
        );
        assert_eq!(*plugin.calls.borrow(), vec!["add c1 net1"]);
    }

    #[test]
    fn plugin_error_becomes_error_document_in_config_version() {
        let plugin = Recorder::default();
        let outcome = call("DEL", CONF_040, &plugin);
        assert_eq!(outcome.exit_code, 1);
        assert_eq!(
            outcome.stdout,
            r#"{"cniVersion":"0.4.0","code":5,"msg":"boom"}"#
        );
    }

    #[test]
    fn check_and_status_print_nothing() {
        let plugin = Recorder::default();
        assert_eq!(
            call("CHECK", CONF_040, &plugin),
            Outcome {
                stdout: "".into(),
                exit_code: 0
            }
        );
        assert_eq!(
            call("STATUS", CONF_110, &plugin),
            Outcome {
                stdout: "".into(),
                exit_code: 0
            }
        );
        assert_eq!(call("GC", CONF_110, &plugin).exit_code, 0);
        assert_eq!(*plugin.calls.borrow(), vec!["check", "status", "gc 0"]);
    }

    #[test]
    fn commands_older_than_their_spec_get_code_1() {
        let plugin = Recorder::default();
        let conf_031 = CONF_040.replace("0.4.0", "0.3.1");
        for (command, conf) in [
            ("CHECK", conf_031.as_str()),
            ("STATUS", CONF_040),
            ("GC", CONF_040),
        ] {
            let outcome = call(command, conf, &plugin);
            assert_eq!(outcome.exit_code, 1);
            assert!(
                outcome.stdout.contains("\"code\":1"),
                "{command}: {}",
                outcome.stdout
            );
        }
        assert!(plugin.calls.borrow().is_empty());
    }

    #[test]
    fn oversized_stdin_is_refused_unread() {
        let plugin = Recorder::default();
        let mut huge = std::io::repeat(b' ').take(MAX_STDIN + 10);
        let outcome = dispatch("ADD", &lookup, &mut huge, &plugin);
        assert_eq!(outcome.exit_code, 1);
        assert!(outcome.stdout.contains("\"code\":7"), "{}", outcome.stdout);
        assert!(plugin.calls.borrow().is_empty());
    }

    #[test]
    fn version_needs_no_env_or_config() {
        let plugin = Recorder::default();
        let outcome = dispatch("VERSION", &|_| None, &mut "".as_bytes(), &plugin);
        assert_eq!(outcome.exit_code, 0);
        assert!(outcome.stdout.contains("\"supportedVersions\""));
    }

    #[test]
    fn unknown_command_and_bad_config_codes() {
        let plugin = Recorder::default();
        assert!(
            call("FROB", CONF_040, &plugin)
                .stdout
                .contains("\"code\":4")
        );
        assert!(call("ADD", "{", &plugin).stdout.contains("\"code\":6"));
        let outcome = call("ADD", r#"{"cniVersion":"1.0.0"}"#, &plugin);
        assert_eq!(
            outcome.stdout,
            r#"{"cniVersion":"1.0.0","code":7,"msg":"invalid config: name is missing"}"#
        );
        assert!(plugin.calls.borrow().is_empty());
    }

    /// Every version x command: which ones run the plugin, which get code 1.
    #[test]
    fn version_by_command_table() {
        let table: [(&str, [bool; 5]); 7] = [
            //        ADD    DEL    CHECK  STATUS GC
            ("0.2.0", [false, false, false, false, false]),
            ("0.3.0", [true, true, false, false, false]),
            ("0.3.1", [true, true, false, false, false]),
            ("0.4.0", [true, true, true, false, false]),
            ("1.0.0", [true, true, true, false, false]),
            ("1.1.0", [true, true, true, true, true]),
            ("2.0.0", [false, false, false, false, false]),
        ];
        let commands = ["ADD", "DEL", "CHECK", "STATUS", "GC"];
        for (version, runs) in table {
            let conf = format!(
                r#"{{"cniVersion":"{version}","name":"net1","cni.dev/valid-attachments":[]}}"#
            );
            for (command, should_run) in commands.iter().zip(runs) {
                let plugin = Recorder::default();
                let outcome = call(command, &conf, &plugin);
                let ran = !plugin.calls.borrow().is_empty();
                assert_eq!(ran, should_run, "{version} {command}: {}", outcome.stdout);
                if !should_run {
                    assert!(
                        outcome.stdout.contains("\"code\":1,"),
                        "{version} {command}: {}",
                        outcome.stdout
                    );
                }
            }
            let version_outcome = call("VERSION", &conf, &Recorder::default());
            assert_eq!(version_outcome.exit_code, 0, "VERSION with {version}");
        }
    }

    #[test]
    fn unknown_cni_args_stop_add_but_not_del() {
        let plugin = Recorder::default();
        let lookup = |name: &str| match name {
            "CNI_ARGS" => Some("FOO=bar".to_string()),
            other => lookup(other),
        };
        let outcome = dispatch("ADD", &lookup, &mut CONF_040.as_bytes(), &plugin);
        assert!(outcome.stdout.contains("\"code\":2"), "{}", outcome.stdout);
        let _ = dispatch("DEL", &lookup, &mut CONF_040.as_bytes(), &plugin);
        assert_eq!(*plugin.calls.borrow(), vec!["del c1"]);
    }
}
