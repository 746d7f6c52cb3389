//! GC: remove every attachment of this network that the runtime no longer
//! lists in `cni.dev/valid-attachments` (or the older `cni.dev/attachments`).

use super::naming::parse_alias;
use super::{is_ours, kernel_error, log, open_host};
use crate::cni::config::NetConf;
use crate::cni::error::{CniError, CniResult, INVALID_CONFIG};
use serde::Deserialize;

#[derive(Deserialize)]
struct ValidAttachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

#[derive(Deserialize)]
struct GcConf {
    #[serde(rename = "cni.dev/valid-attachments")]
    valid: Option<Vec<ValidAttachment>>,
    #[serde(rename = "cni.dev/attachments")]
    older: Option<Vec<ValidAttachment>>,
}

pub fn gc(conf: &NetConf, stdin: &[u8]) -> CniResult<()> {
    let gc_conf: GcConf = serde_json::from_slice(stdin)
        .map_err(|e| CniError::new(INVALID_CONFIG, format!("invalid config: {e}")))?;
    // Without the list, every attachment would look stale: refuse.
    let valid = gc_conf.valid.or(gc_conf.older).ok_or_else(|| {
        CniError::new(
            INVALID_CONFIG,
            "invalid config: GC needs cni.dev/valid-attachments",
        )
    })?;
    let is_valid = |container_id: &str, ifname: &str| {
        valid
            .iter()
            .any(|a| a.container_id == container_id && a.ifname == ifname)
    };
    let mut host = open_host()?;
    let links = host.links().map_err(|e| kernel_error("list links", e))?;
    for link in links.iter().filter(|link| is_ours(link)) {
        let Some((network, container_id, ifname)) = parse_alias(&link.alias) else {
            continue;
        };
        if network != conf.name || is_valid(container_id, ifname) {
            continue;
        }
        match host.delete_link(link.index) {
            Ok(()) => log(&format!("GC: deleted {} of {}", link.name, link.alias)),
            Err(e) if e.errno == libc::ENODEV => {}
            Err(e) => {
                return Err(kernel_error(
                    &format!("GC: delete host veth {}", link.name),
                    e,
                ));
            }
        }
    }
    Ok(())
}
