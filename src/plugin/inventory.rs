//! What `mycelium-cni list` and `doctor` read: the attachments on this node
//! and the node's own state, from the kernel alone.

use super::host_veth::is_ours;
use super::naming::parse_alias;
use super::node::{self, Node, NodeError};
use super::open_host;
use crate::cni::error::{CniResult, Wrap};
use crate::netlink::Netlink;
use crate::netlink::route::Route;
use netlink_packet_route::AddressFamily;

pub struct AttachmentRow {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    /// The pod address (the host veth's /128 route), or "-".
    pub address: String,
    /// The node-local IPv4 address (egress `nat`), or "-".
    pub ipv4: String,
    pub host_veth: String,
}

pub fn attachments() -> CniResult<Vec<AttachmentRow>> {
    let mut nl = open_host()?;
    let links = nl.links().wrap("list links")?;
    let mut rows = Vec::new();
    for link in links.iter().filter(|link| is_ours(link)) {
        let (network, container_id, ifname) =
            parse_alias(&link.alias).unwrap_or(("(unlabelled)", "-", "-"));
        rows.push(AttachmentRow {
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
            address: host_route(&mut nl, AddressFamily::Inet6, link.index)?,
            ipv4: host_route(&mut nl, AddressFamily::Inet, link.index)?,
            host_veth: link.name.clone(),
        });
    }
    Ok(rows)
}

/// The address of the host route (/128 or /32) of `family` to a host veth:
/// the pod's address, or "-".
fn host_route(nl: &mut Netlink, family: AddressFamily, index: u32) -> CniResult<String> {
    let routes = nl.routes(family, index).wrap("list routes")?;
    let host =
        |r: &&Route| r.destination.prefix() == if r.destination.is_ipv4() { 32 } else { 128 };
    Ok(routes.iter().find(host).map_or_else(
        || "-".to_string(),
        |route| route.destination.ip().to_string(),
    ))
}

/// The Mycelium interface's state as ADD would find it, or why ADD would fail.
pub fn node_status(interface: &str) -> Result<Node, NodeError> {
    let mut nl = open_host()?;
    node::inspect(&mut nl, interface)
}
