//! What `mycelium-cni list` and `doctor` read: the attachments on this node
//! and the node's own state, from the kernel alone.

use super::naming::parse_alias;
use super::node::{self, Node};
use super::{is_ours, open_host};

pub struct AttachmentRow {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    /// The pod address (the host veth's /128 route), or "-".
    pub address: String,
    pub host_veth: String,
}

pub fn attachments() -> Result<Vec<AttachmentRow>, String> {
    let mut nl = open_host().map_err(|e| e.msg)?;
    let links = nl.links().map_err(|e| format!("list links: {e}"))?;
    let mut rows = Vec::new();
    for link in links.iter().filter(|link| is_ours(link)) {
        let (network, container_id, ifname) =
            parse_alias(&link.alias).unwrap_or(("(unlabelled)", "-", "-"));
        let routes = nl
            .routes(link.index)
            .map_err(|e| format!("list routes: {e}"))?;
        let address = routes
            .iter()
            .filter(|route| route.prefix_len == 128)
            .find_map(|route| route.destination)
            .map_or_else(|| "-".to_string(), |address| address.to_string());
        rows.push(AttachmentRow {
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
            address,
            host_veth: link.name.clone(),
        });
    }
    Ok(rows)
}

/// The Mycelium interface's state as ADD would find it, or why ADD would fail.
pub fn node_status(interface: &str) -> Result<Node, String> {
    let mut nl = open_host().map_err(|e| e.msg)?;
    node::inspect(&mut nl, interface).map_err(|e| e.msg)
}
