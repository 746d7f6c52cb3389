//! What ADD and GC make sure of in the plugin's nf_tables table, for one
//! network: the source filter (when `sourceFilter` is on) and the
//! network's overlay ingress chain. One snapshot of the table (three
//! requests), then at most one batch with every change, so a node in the
//! configured state costs ADD three requests and nothing else.

use super::nft_table::{self, Snapshot};
use super::{filter, ingress};
use crate::cni::config::{NetConf, OverlayIngress};
use crate::cni::error::{CniError, CniResult};
use crate::log;
use crate::netlink::Netlink;

/// Whether this network needs nf_tables at all: `open` without the source
/// filter asks it only to remove a chain of an earlier setting, and a node
/// without nf_tables must still take pods then.
fn needs_nf_tables(conf: &NetConf) -> bool {
    conf.source_filter || conf.overlay_ingress != OverlayIngress::Open
}

/// The table brought in line with `conf`; ADD's step before it creates
/// anything, and GC's after it deleted what it had to.
pub fn ensure(host: &mut Netlink, conf: &NetConf) -> CniResult<()> {
    match apply(host, conf) {
        Err(error) if !needs_nf_tables(conf) => {
            let msg = &error.msg;
            log::line(&format!(
                "overlayIngress open; no earlier chain removed: {msg}"
            ));
            Ok(())
        }
        other => other.map_err(|error| unusable(conf, error)),
    }
}

fn apply(host: &mut Netlink, conf: &NetConf) -> CniResult<()> {
    let mut nl = nft_table::open()?;
    let snapshot = Snapshot::read(&mut nl)?;
    let mut changes = Vec::new();
    if conf.source_filter {
        changes.extend(filter::changes(&snapshot));
    }
    changes.extend(ingress::changes(&mut nl, host, &snapshot, conf)?);
    nft_table::apply(&mut nl, &changes, "install chains")
}

/// GC's step when no pod of the network is left on the node: its overlay
/// ingress chain and set go (the next ADD makes them again). The source
/// filter serves every network and stays.
pub fn remove_network(conf: &NetConf) -> CniResult<()> {
    let removed = nft_table::open().and_then(|mut nl| {
        let snapshot = Snapshot::read(&mut nl)?;
        let name = ingress::chain_name(&conf.name);
        if !snapshot.has_chain(&name) {
            return Ok(());
        }
        let changes = ingress::remove_changes(&conf.name);
        nft_table::apply(&mut nl, &changes, &format!("delete chain {name}"))
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
    } else {
        ingress::unusable(error)
    }
}
