//! doctor's overlay ingress findings: for every network of ours in the CNI
//! config directory, its `overlayIngress` setting and whether the kernel
//! holds it; a network open to the whole overlay is a warning with the fix.

use super::doctor::{Report, our_entry};
use crate::cni::config::{NetConf, OverlayIngress, conflist_entry};
use crate::plugin::ingress::{self, IngressState};
use crate::plugin::nft_table::{self, Snapshot};
use serde_json::Value;
use std::path::Path;

const OPEN_FIX: &str = "set \"overlayIngress\": \"replies\" (pods only get answers to their own connections), or a list of the prefixes that may connect, e.g. your nodes' /64s: mycelium-cni install --overlay-ingress replies [--overlay-allow PREFIX]...";

pub(super) fn check(report: &mut Report, networks: &[&NetConf]) {
    for conf in networks {
        check_group(report, conf, networks);
        check_network(report, conf);
    }
}

/// Two networks whose names hash to one interface group, configured side
/// by side or holding chains on the node: ADD refuses the second one.
fn check_group(report: &mut Report, conf: &NetConf, networks: &[&NetConf]) {
    let configured = networks
        .iter()
        .map(|other| other.name.as_str())
        .find(|other| *other != conf.name && ingress::group(other) == ingress::group(&conf.name));
    let snapshot = nft_table::open().and_then(|mut nl| Snapshot::read(&mut nl));
    let on_node = snapshot
        .as_ref()
        .ok()
        .and_then(|snapshot| ingress::colliding_network(snapshot, &conf.name));
    if let Some(other) = configured.or(on_node) {
        report.fail(
            &ingress::collision(&conf.name, other).msg,
            "rename one of the two networks (the name in its conflist)",
        );
    }
}

/// Our networks in the `.conflist` files of `dir`, by file name order;
/// files that do not parse are the conflist check's business.
pub(super) fn networks_in(dir: &Path) -> Vec<NetConf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "conflist"))
        .collect();
    paths.sort();
    let mut networks: Vec<NetConf> = Vec::new();
    for path in paths {
        let path = path.to_string_lossy();
        let Ok(text) = crate::regular_file::read_bounded(&path, super::doctor::MAX_CONFLIST) else {
            continue;
        };
        let Ok(list) = serde_json::from_slice::<Value>(&text) else {
            continue;
        };
        let parsed =
            our_entry(&list).map(|entry| NetConf::from_value(&conflist_entry(&list, entry)));
        if let Some(Ok(conf)) = parsed {
            if !networks.iter().any(|n| n.name == conf.name) {
                networks.push(conf);
            }
        }
    }
    networks
}

fn check_network(report: &mut Report, conf: &NetConf) {
    let setting = &conf.overlay_ingress;
    let label = format!("network {}: overlayIngress {setting}", conf.name);
    let state = nft_table::open().and_then(|mut nl| ingress::current_state(&mut nl, conf));
    match state {
        Ok(IngressState::Open) => report.warn(
            &format!("{label}: every node on the Mycelium overlay can reach its pods"),
            OPEN_FIX,
        ),
        Ok(state @ IngressState::InForce { .. }) => report.ok(&format!("{label}: {state}")),
        Ok(state @ IngressState::Missing) => report.warn(
            &format!("{label}: {state}"),
            "none needed before the first pod: the next ADD or GC creates it",
        ),
        Ok(state) => report.fail(
            &format!("{label}: {state}"),
            "the next ADD or GC replaces it; do not edit the table by hand",
        ),
        Err(_) if *setting == OverlayIngress::Open => report.warn(
            &format!("{label}: every node on the Mycelium overlay can reach its pods"),
            OPEN_FIX,
        ),
        Err(error) => report.fail(
            &format!("{label}: {}", error.msg),
            "enable nf_tables with conntrack, or set \"overlayIngress\": \"open\"",
        ),
    }
}
