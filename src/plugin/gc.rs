//! GC: remove every attachment of this network that the runtime no longer
//! lists in `cni.dev/valid-attachments` (or the older `cni.dev/attachments`).

use super::naming::parse_alias;
use super::{is_ours, kernel_error, log, open_host};
use crate::cni::config::{NetConf, ValidAttachment};
use crate::cni::error::CniResult;

pub fn gc(conf: &NetConf, valid: &[ValidAttachment]) -> CniResult<()> {
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
