//! What ADD and GC make sure of in the plugin's nf_tables table, for one
//! network: the source filter (when `sourceFilter` is on), the network's
//! overlay ingress chain and its egress NAT chain. One snapshot of the table (three
//! requests), then at most one batch with every change, so a node in the
//! configured state costs ADD three requests and nothing else.

use super::nft_table::{self, Snapshot};
use super::{egress, filter, ingress};
use crate::cni::config::{NetConf, OverlayIngress};
use crate::cni::error::{CniError, CniResult, INVALID_CONFIG};
use crate::log;
use crate::netlink::Netlink;

/// Whether this network needs nf_tables at all: `open` and `overlay`
/// without the source filter ask it only to remove chains of an earlier
/// setting, and a node without nf_tables must still take pods then.
fn needs_nf_tables(conf: &NetConf) -> bool {
    conf.source_filter || conf.overlay_ingress != OverlayIngress::Open || conf.egress.is_nat()
}

/// The table brought in line with `conf`; ADD's step before it creates
/// anything, and GC's after it deleted what it had to. Gives back the
/// nf_tables socket (ADD adds its fast path elements through it), None
/// when nf_tables was unusable and not needed.
pub fn ensure(host: &mut Netlink, conf: &NetConf) -> CniResult<Option<Netlink>> {
    match apply(host, conf) {
        Err(error) if error.code == INVALID_CONFIG => Err(error),
        Err(error) if !needs_nf_tables(conf) => {
            let msg = &error.msg;
            log::line(&format!(
                "overlayIngress open, egress overlay; no earlier chain removed: {msg}"
            ));
            Ok(None)
        }
        other => other.map(Some).map_err(|error| unusable(conf, error)),
    }
}

fn apply(host: &mut Netlink, conf: &NetConf) -> CniResult<Netlink> {
    let mut nl = nft_table::open()?;
    let snapshot = Snapshot::read(&mut nl)?;
    if let Some(other) = ingress::colliding_network(&snapshot, &conf.name) {
        return Err(ingress::collision(&conf.name, other));
    }
    if snapshot.is_dormant() {
        nft_table::wake(&mut nl)?;
    }
    let mut changes = Vec::new();
    if conf.source_filter {
        changes.extend(filter::changes(&snapshot));
    }
    changes.extend(ingress::changes(&mut nl, host, &snapshot, conf)?);
    changes.extend(egress::changes(&snapshot, conf));
    nft_table::apply(&mut nl, &changes, "install chains")?;
    Ok(nl)
}

/// GC's step when no pod of the network is left on the node: its overlay
/// ingress chain and set and its egress chain go (the next ADD makes them
/// again). The source filter serves every network and stays.
pub fn remove_network(conf: &NetConf) -> CniResult<()> {
    let removed = nft_table::open().and_then(|mut nl| {
        let snapshot = Snapshot::read(&mut nl)?;
        let mut changes = Vec::new();
        if snapshot.has_chain(&ingress::chain_name(&conf.name)) {
            changes.extend(ingress::remove_changes(&conf.name));
        }
        let egress = egress::chain_name(&conf.name);
        if snapshot.has_chain(&egress) {
            changes.extend(nft_table::remove_changes(&egress));
        }
        nft_table::apply(&mut nl, &changes, "delete the network's chains")
    });
    match removed {
        Err(error) if !needs_nf_tables(conf) => {
            log::line(&format!("GC: no chain removed: {}", error.msg));
            Ok(())
        }
        other => other.map_err(|error| unusable(conf, error)),
    }
}

/// nf_tables cannot carry what is configured: the error says which keys
/// turn the features that need it off.
fn unusable(conf: &NetConf, error: CniError) -> CniError {
    if conf.source_filter {
        filter::unusable(error)
    } else if conf.overlay_ingress != OverlayIngress::Open {
        ingress::unusable(error)
    } else {
        egress::unusable(error)
    }
}
