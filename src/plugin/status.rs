//! STATUS: whether ADD would work now. Any failure is code 50 (not
//! available): the Mycelium interface is not ready, or the source filter or
//! an overlay ingress control is configured and nf_tables cannot be read. A missing or altered filter table does
//! not fail STATUS: the next ADD restores it, and a failing STATUS would
//! keep the runtime from sending that ADD.

use super::{filter, ingress, nft_table, node, open_host};
use crate::cni::config::{NetConf, OverlayIngress};
use crate::cni::error::{CniError, CniResult, STATUS_NOT_AVAILABLE};

pub fn status(conf: &NetConf) -> CniResult<()> {
    let not_available = |error: CniError| CniError {
        code: STATUS_NOT_AVAILABLE,
        ..error
    };
    let mut nl = open_host()?;
    node::inspect(&mut nl, &conf.mycelium_interface)
        .map_err(|error| not_available(error.into()))?;
    if conf.source_filter {
        nft_table::open()
            .and_then(|mut nl| filter::state(&mut nl))
            .map_err(|error| not_available(filter::unusable(error)))?;
    }
    if conf.overlay_ingress != OverlayIngress::Open {
        nft_table::open()
            .and_then(|mut nl| ingress::current_state(&mut nl, conf))
            .map_err(|error| not_available(ingress::unusable(error)))?;
    }
    Ok(())
}
