//! Finding an attachment's host veth, and telling our veths from others.

use super::naming::{self, AttachmentId};
use crate::cni::error::{CniResult, Wrap};
use crate::netlink::Netlink;
use crate::netlink::link::Link;

/// The host veth of an attachment, found by its derived name and, failing
/// that (a name collision moved it), by its alias among all links.
pub fn find(nl: &mut Netlink, id: &AttachmentId) -> CniResult<Option<Link>> {
    let alias = id.alias();
    let by_name = nl
        .link_by_name(&id.host_veth_name(0))
        .wrap("look up host veth")?;
    if let Some(link) = by_name.filter(|link| link.alias == alias && is_ours(link)) {
        return Ok(Some(link));
    }
    let links = nl.links().wrap("list links")?;
    Ok(links
        .into_iter()
        .find(|link| link.alias == alias && is_ours(link)))
}

/// A veth whose name has our prefix: only such links are ever deleted.
pub fn is_ours(link: &Link) -> bool {
    link.is_veth() && link.name.starts_with(naming::HOST_VETH_PREFIX)
}
