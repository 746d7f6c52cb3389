//! STATUS: whether ADD would work now, asked of the Mycelium interface
//! alone. Any failure is code 50 (not available).

use super::{node, open_host};
use crate::cni::config::NetConf;
use crate::cni::error::{CniError, CniResult, STATUS_NOT_AVAILABLE};

pub fn status(conf: &NetConf) -> CniResult<()> {
    let mut nl = open_host()?;
    node::inspect(&mut nl, &conf.mycelium_interface)
        .map(|_| ())
        .map_err(|error| CniError {
            code: STATUS_NOT_AVAILABLE,
            ..CniError::from(error)
        })
}
