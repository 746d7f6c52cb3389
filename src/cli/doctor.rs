//! doctor: checks the node the way ADD will need it, and prints each
//! finding with its fix. Exit 0 when nothing failed (warnings allowed).

use super::conflist::{self, MAX_CONFLIST, is_type, our_entry, plugins_of};
use super::report::Report;
use super::{
    BINARY_NAME, CONFLIST_NAME, DEFAULT_BIN_DIR, DEFAULT_CONF_DIR, EXIT_OK, EXIT_PROBLEM, Options,
    Outcome,
};
use crate::cni::config::{DEFAULT_INTERFACE, NetConf, conflist_entry};
use crate::plugin::fastpath;
use crate::plugin::filter::{self, FilterState};
use crate::plugin::naming::{HOST_VETH_PREFIX, node_prefix, prefix_text};
use crate::plugin::nft_table;
use crate::plugin::node::NodeError;
use crate::plugin::{attachments, node_status, overlay_route_interfaces};
use crate::sysctl;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;

pub fn doctor(options: &Options) -> Outcome {
    let mut report = Report::default();
    let default_conf = format!("{DEFAULT_CONF_DIR}/{CONFLIST_NAME}");
    let conf_path = options.get("conf").unwrap_or(&default_conf);
    let configured = check_conflist(&mut report, conf_path);
    let interface = options
        .get("interface")
        .or(configured.as_ref().map(|c| c.mycelium_interface.as_str()))
        .unwrap_or(DEFAULT_INTERFACE);
    check_interface(&mut report, interface);
    check_source_filter(&mut report, configured.as_ref());
    let conf_dir = std::path::Path::new(conf_path).parent();
    let in_dir = conf_dir.map(conflist::networks_in);
    let mut networks: Vec<&NetConf> = in_dir.iter().flatten().collect();
    if networks.is_empty() {
        networks.extend(configured.as_ref());
    }
    super::doctor_ingress::check(&mut report, &networks);
    super::doctor_egress::check(&mut report, &networks);
    check_forwarding(&mut report);
    check_forward_policy(&mut report);
    let bin_dir = options.get("bin-dir").unwrap_or(DEFAULT_BIN_DIR);
    check_binary(&mut report, bin_dir);
    check_chain(&mut report, conf_path, bin_dir);
    check_attachment_prefixes(&mut report, interface);
    check_overlay_routes(&mut report);
    let exit_code = if report.failed() {
        EXIT_PROBLEM
    } else {
        EXIT_OK
    };
    Outcome {
        stdout: report.into_text(),
        exit_code,
    }
}

/// The conflist parses, has a mycelium-cni entry, and that entry passes the
/// plugin's own config checks. Returns that entry's config.
fn check_conflist(report: &mut Report, path: &str) -> Option<NetConf> {
    let fix = "run scripts/install.sh (or: mycelium-cni install)";
    let text = match crate::regular_file::read_bounded(path, MAX_CONFLIST) {
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
    let plugins = plugins_of(&list);
    let Some(entry) = our_entry(&list) else {
        report.fail(&format!("conflist {path} has no {BINARY_NAME} plugin"), fix);
        return None;
    };
    match NetConf::from_value(&conflist_entry(&list, entry)) {
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
            Some(parsed)
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
            let prefix = std::net::Ipv6Addr::from(u128::from(node_prefix(node.address)) << 64);
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
        Err(NodeError::NotReady(not_ready)) => report.fail(&not_ready.to_string(), not_ready.fix()),
        Err(NodeError::Kernel(error)) => report.fail(&error.msg, "run doctor as root"),
    }
}

/// The nf_tables source filter and its drop counters; with `sourceFilter`
/// off only a note.
fn check_source_filter(report: &mut Report, conf: Option<&NetConf>) {
    if conf.is_some_and(|conf| !conf.source_filter) {
        report.warn(
            "source filter off (sourceFilter: false): pods can send with any source address",
            "remove \"sourceFilter\": false from the conflist unless the kernel lacks nf_tables",
        );
        return;
    }
    let state = nft_table::open().and_then(|mut nl| filter::state(&mut nl));
    match state {
        Ok(state @ FilterState::InForce { .. }) => {
            report.ok(&format!("source filter {state}"));
            check_fast_path(report);
        }
        Ok(state @ FilterState::Missing) => {
            report.warn(&format!("source filter: {state}"), state.fix())
        }
        Ok(state) => report.fail(&format!("source filter: {state}"), state.fix()),
        Err(error) => report.fail(
            &format!("source filter: {}", error.msg),
            "enable nf_tables (nft list tables), or set \"sourceFilter\": false",
        ),
    }
}

/// Stale elements are harmless (their veth is gone); one naming an address
/// its veth does not claim lets that pod send as the address unchecked.
fn check_fast_path(report: &mut Report) {
    match fastpath::Summary::read() {
        Ok(summary) if summary.foreign.is_empty() && summary.missing == 0 => {
            report.ok(&summary.to_string())
        }
        Ok(summary) if summary.foreign.is_empty() => report.warn(
            &summary.to_string(),
            "their packets still meet the fib check; the next GC adds the elements",
        ),
        Ok(summary) => report.fail(
            &summary.to_string(),
            "delete those elements (nft delete element inet mycelium-cni pods6 { ADDRESS . INDEX }); GC removes them too",
        ),
        Err(error) => report.fail(&format!("fast path: {}", error.msg), "run doctor as root"),
    }
}

fn check_forwarding(report: &mut Report) {
    let forwarding = sysctl::read("all", "forwarding");
    match forwarding.as_deref() {
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
    if forwarding.as_deref() != Ok("1") {
        return;
    }
    for interface in sysctl::interfaces().unwrap_or_default() {
        if interface == "lo" || interface.starts_with(HOST_VETH_PREFIX) {
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
    let (inbound, outbound) = (
        format!("-i {HOST_VETH_PREFIX}+"),
        format!("-o {HOST_VETH_PREFIX}+"),
    );
    let allows_pods = rules.contains(&inbound) || rules.contains(&outbound);
    if rules.contains("-P FORWARD DROP") && !allows_pods {
        report.warn(
            "ip6tables FORWARD policy is DROP: pod traffic is dropped",
            &format!(
                "ip6tables -I FORWARD {inbound} -j ACCEPT; ip6tables -I FORWARD {outbound} -j ACCEPT"
            ),
        );
    } else {
        report.ok("ip6tables FORWARD lets pod traffic through");
    }
}

fn check_binary(report: &mut Report, bin_dir: &str) {
    let path = format!("{bin_dir}/{BINARY_NAME}");
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

const PORTMAP_ENTRY: &str = r#"{"type": "portmap", "capabilities": {"portMappings": true}}"#;

/// The conflist's chain: without portmap, hostPort (k3s's ServiceLB, and
/// Traefik through it) does nothing; a plugin missing from the bin
/// directory fails every ADD of the network.
fn check_chain(report: &mut Report, conf_path: &str, bin_dir: &str) {
    let Ok(list) = conflist::read(conf_path) else {
        return; // the conflist check has said why
    };
    let plugins = plugins_of(&list);
    if !plugins.iter().any(|p| is_type(p, "portmap")) {
        report.warn(
            "conflist has no portmap: hostPort does nothing, so k3s's ServiceLB (and Traefik on ports 80/443) gets no traffic",
            &format!("run mycelium-cni install (it chains portmap when it is in the bin directory), or add {PORTMAP_ENTRY} after mycelium-cni"),
        );
    }
    let kinds = plugins.iter().filter_map(|p| p.get("type")?.as_str());
    for kind in kinds.filter(|k| *k != BINARY_NAME && *k != "loopback") {
        if std::fs::metadata(format!("{bin_dir}/{kind}")).is_err() {
            report.warn(
                &format!("conflist names {kind}, but {bin_dir}/{kind} is missing: the runtime fails every pod's ADD"),
                &format!("install {kind} into {bin_dir} (the CNI reference plugins; k3s ships them), or remove it from the conflist"),
            );
        }
    }
}

/// Attachments whose address is outside the node's current /64: the key
/// (and so the /64) changed after they were made, and the overlay no longer
/// routes them to this node.
fn check_attachment_prefixes(report: &mut Report, interface: &str) {
    let (Ok(node), Ok(rows)) = (node_status(interface), attachments()) else {
        return; // the interface check has said why
    };
    let current = prefix_text(node.address);
    let outside: Vec<_> = rows.iter().filter(|row| row.outside(&node)).collect();
    if outside.is_empty() {
        if !rows.is_empty() {
            report.ok(&format!("{} attachment(s), all in {current}", rows.len()));
        }
        return;
    }
    // Each old /64 once (no sort: it would link in a sort routine).
    let mut old: Vec<String> = Vec::new();
    for prefix in outside.iter().filter_map(|r| r.ip).map(prefix_text) {
        if !old.contains(&prefix) {
            old.push(prefix);
        }
    }
    report.fail(
        &format!(
            "{} attachment(s) have addresses outside the node's /64 {current} (they are in {}): the Mycelium key, and with it the /64, changed; the overlay no longer routes them to this node",
            outside.len(),
            old.join(", ")
        ),
        &format!("restart those pods (mycelium-cni list marks them); new pods get addresses in {current}"),
    );
}

/// More than one 400::/7 route: only one interface gets overlay traffic.
fn check_overlay_routes(report: &mut Report) {
    let Ok(interfaces) = overlay_route_interfaces() else {
        return;
    };
    if interfaces.len() > 1 {
        report.warn(
            &format!(
                "{} routes for 400::/7 (dev {}): a second Mycelium daemon? only one of them carries overlay traffic",
                interfaces.len(),
                interfaces.join(", dev ")
            ),
            "stop the other daemon, or remove its route: ip -6 route del 400::/7 dev NAME",
        );
    }
}
