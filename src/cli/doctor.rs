//! doctor: checks the node the way ADD will need it, and prints each
//! finding with its fix. Exit 0 when nothing failed (warnings allowed).

use super::{
    CONFLIST_NAME, DEFAULT_BIN_DIR, DEFAULT_CONF_DIR, EXIT_OK, EXIT_PROBLEM, Options, Outcome,
};
use crate::cni::config::{DEFAULT_INTERFACE, NetConf};
use crate::plugin::node_status;
use crate::sysctl;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;

#[derive(Default)]
struct Report {
    text: String,
    failed: bool,
}

impl Report {
    fn line(&mut self, label: &str, finding: &str, fix: &str) {
        self.text.push_str(label);
        self.text.push_str(finding);
        if !fix.is_empty() {
            self.text.push_str("\n      fix: ");
            self.text.push_str(fix);
        }
        self.text.push('\n');
    }
    fn ok(&mut self, finding: &str) {
        self.line("ok    ", finding, "");
    }
    fn warn(&mut self, finding: &str, fix: &str) {
        self.line("warn  ", finding, fix);
    }
    fn fail(&mut self, finding: &str, fix: &str) {
        self.failed = true;
        self.line("FAIL  ", finding, fix);
    }
}

pub fn doctor(options: &Options) -> Outcome {
    let mut report = Report::default();
    let default_conf = format!("{DEFAULT_CONF_DIR}/{CONFLIST_NAME}");
    let conf_path = options.get("conf").unwrap_or(&default_conf);
    let configured = check_conflist(&mut report, conf_path);
    let interface = options
        .get("interface")
        .map(str::to_string)
        .or(configured)
        .unwrap_or_else(|| DEFAULT_INTERFACE.into());
    check_interface(&mut report, &interface);
    check_forwarding(&mut report);
    check_forward_policy(&mut report);
    check_binary(
        &mut report,
        options.get("bin-dir").unwrap_or(DEFAULT_BIN_DIR),
    );
    let exit_code = if report.failed { EXIT_PROBLEM } else { EXIT_OK };
    Outcome {
        stdout: report.text,
        exit_code,
    }
}

/// The conflist parses, has a mycelium-cni entry, and that entry passes the
/// plugin's own config checks. Returns its myceliumInterface.
fn check_conflist(report: &mut Report, path: &str) -> Option<String> {
    let fix = "run scripts/install.sh (or: mycelium-cni install)";
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) => {
            report.fail(&format!("conflist {path}: {e}"), fix);
            return None;
        }
    };
    let list: Value = match serde_json::from_slice(&text) {
        Ok(list) => list,
        Err(e) => {
            report.fail(&format!("conflist {path} is not JSON: {e}"), fix);
            return None;
        }
    };
    let plugins = list
        .get("plugins")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let is_type =
        |plugin: &Value, kind: &str| plugin.get("type").and_then(Value::as_str) == Some(kind);
    let entry = plugins
        .iter()
        .find(|p| is_type(p, "mycelium-cni"))
        .and_then(Value::as_object);
    let Some(entry) = entry else {
        report.fail(&format!("conflist {path} has no mycelium-cni plugin"), fix);
        return None;
    };
    // The runtime hands each plugin the list's cniVersion and name.
    let mut conf = entry.clone();
    for key in ["cniVersion", "name"] {
        conf.insert(key.into(), list.get(key).cloned().unwrap_or(Value::Null));
    }
    match NetConf::parse(Value::Object(conf).to_string().as_bytes()) {
        Ok(parsed) => {
            report.ok(&format!(
                "conflist {path}: network {}, interface {}",
                parsed.name, parsed.mycelium_interface
            ));
            if !plugins.first().is_some_and(|p| is_type(p, "loopback")) {
                report.warn(
                    "conflist does not start with loopback: lo may stay down in pods",
                    fix,
                );
            }
            Some(parsed.mycelium_interface)
        }
        Err(e) => {
            report.fail(
                &format!("conflist {path}: {}", e.msg),
                "correct the named key",
            );
            None
        }
    }
}

fn check_interface(report: &mut Report, interface: &str) {
    match node_status(interface) {
        Ok(node) => {
            let prefix = crate::plugin::naming::node_prefix(node.address);
            let prefix = std::net::Ipv6Addr::from(u128::from(prefix) << 64);
            report.ok(&format!(
                "{interface}: up, overlay address {}, pods get {prefix}/64",
                node.address
            ));
            if node.mtu < 1280 {
                report.fail(
                    &format!("{interface}: MTU {} is below IPv6's 1280", node.mtu),
                    "restart the Mycelium daemon",
                );
            } else {
                report.ok(&format!(
                    "{interface}: MTU {} (pods get the same unless mtu is set)",
                    node.mtu
                ));
            }
        }
        Err(msg) => {
            let fix = if msg.starts_with("failed to find") {
                "start the Mycelium daemon, or set myceliumInterface to its --tun-name"
            } else if msg.contains("is down") {
                "ip link set dev INTERFACE up, or restart the Mycelium daemon"
            } else {
                "check the Mycelium daemon's log; ip -6 route get 5ff::1 shows where overlay traffic goes"
            };
            report.fail(&msg, fix);
        }
    }
}

fn check_forwarding(report: &mut Report) {
    match sysctl::read("all", "forwarding").as_deref() {
        Ok("0") => report.warn(
            "net.ipv6.conf.all.forwarding=0",
            "none needed: the first ADD turns it on",
        ),
        Ok(_) => report.ok("net.ipv6.conf.all.forwarding=1"),
        Err(_) => report.fail(
            "cannot read net.ipv6.conf.all.forwarding: is IPv6 disabled?",
            "enable IPv6",
        ),
    }
    let forwarding_on = sysctl::read("all", "forwarding").as_deref() == Ok("1");
    for interface in sysctl::interfaces().unwrap_or_default() {
        let ours = interface.starts_with(crate::plugin::naming::HOST_VETH_PREFIX);
        if interface == "lo" || ours || !forwarding_on {
            continue;
        }
        if sysctl::read(&interface, "accept_ra").as_deref() == Ok("1") {
            report.warn(
                &format!("{interface}: accept_ra=1 with forwarding on: router advertisements are ignored"),
                &format!("sysctl -w net.ipv6.conf.{interface}.accept_ra=2 (if it learns its route by SLAAC)"),
            );
        }
    }
}

/// A DROP policy on the IPv6 FORWARD chain stops pod traffic unless rules
/// let it through. Read with ip6tables (nft or legacy), when installed.
fn check_forward_policy(report: &mut Report) {
    let Some(rules) = crate::exec::output(&["ip6tables", "-S", "FORWARD"]) else {
        report.ok("ip6tables not available: FORWARD policy not checked");
        return;
    };
    let allows_pods = rules.contains("-i myc+") || rules.contains("-o myc+");
    if rules.contains("-P FORWARD DROP") && !allows_pods {
        report.warn(
            "ip6tables FORWARD policy is DROP: pod traffic is dropped",
            "ip6tables -I FORWARD -i myc+ -j ACCEPT; ip6tables -I FORWARD -o myc+ -j ACCEPT",
        );
    } else {
        report.ok("ip6tables FORWARD lets pod traffic through");
    }
}

fn check_binary(report: &mut Report, bin_dir: &str) {
    let path = format!("{bin_dir}/mycelium-cni");
    match std::fs::metadata(&path) {
        Ok(meta) if meta.permissions().mode() & 0o111 != 0 => {
            report.ok(&format!("{path} is installed"))
        }
        Ok(_) => report.fail(
            &format!("{path} is not executable"),
            &format!("chmod 0755 {path}"),
        ),
        Err(_) => report.fail(
            &format!("{path} is missing"),
            "run scripts/install.sh (or: mycelium-cni install)",
        ),
    }
    if std::fs::metadata(format!("{bin_dir}/loopback")).is_err() {
        report.warn(
            &format!("{bin_dir}/loopback is missing: the conflist chains it"),
            "install the CNI reference plugins",
        );
    }
}
