//! doctor's overlay ingress findings: for every network of ours in the CNI
//! config directory, its `overlayIngress` setting and whether the kernel
//! holds it; a network open to the whole overlay is a warning with the fix.

use super::report::Report;
use crate::cni::config::{NetConf, OverlayIngress};
use crate::plugin::ingress::{self, IngressState};
use crate::plugin::nft_table::{self, Snapshot};

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

fn check_network(report: &mut Report, conf: &NetConf) {
    let setting = &conf.overlay_ingress;
    let label = format!("network {}: overlayIngress {setting}", conf.name);
    let state = nft_table::open().and_then(|mut nl| ingress::current_state(&mut nl, conf));
    match state {
        Ok(state @ IngressState::Open) => report.warn(
            &format!("{label}: every node on the Mycelium overlay can reach its pods"),
            state.fix(),
        ),
        Ok(state @ IngressState::InForce { .. }) => report.ok(&format!("{label}: {state}")),
        Ok(state @ IngressState::Missing) => report.warn(&format!("{label}: {state}"), state.fix()),
        Ok(state) => report.fail(&format!("{label}: {state}"), state.fix()),
        Err(_) if *setting == OverlayIngress::Open => report.warn(
            &format!("{label}: every node on the Mycelium overlay can reach its pods"),
            ingress::OPEN_FIX,
        ),
        Err(error) => report.fail(
            &format!("{label}: {}", error.msg),
            "enable nf_tables with conntrack, or set \"overlayIngress\": \"open\"",
        ),
    }
}
