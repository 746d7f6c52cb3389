//! What `mycelium-cni list` and `doctor` read: the attachments on this node
//! and the node's own state, from the kernel alone.

use super::host_veth::is_ours;
use super::naming::{self, parse_alias};
use super::node::{self, Node, NodeError};
use super::open_host;
use crate::cni::error::{CniResult, Wrap};
use std::net::Ipv6Addr;

pub struct AttachmentRow {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    /// The pod address (the host veth's /128 route), or "-".
    pub address: String,
    pub host_veth: String,
    /// The pod address, when there is one.
    pub ip: Option<Ipv6Addr>,
}

impl AttachmentRow {
    /// An address outside the node's current /64: the node's key (and so
    /// its /64) changed after this pod was attached, and the overlay no
    /// longer routes the address here.
    pub fn outside(&self, node: &Node) -> bool {
        self.ip.is_some_and(|ip| !node.owns(ip))
    }
}

pub fn attachments() -> CniResult<Vec<AttachmentRow>> {
    let mut nl = open_host()?;
    let links = nl.links().wrap("list links")?;
    let mut rows = Vec::new();
    for link in links.iter().filter(|link| is_ours(link)) {
        let (network, container_id, ifname) =
            parse_alias(&link.alias).unwrap_or(("(unlabelled)", "-", "-"));
        let routes = nl.routes(link.index).wrap("list routes")?;
        let ip = routes
            .iter()
            .filter(|route| route.prefix_len == 128)
            .find_map(|route| route.destination);
        let address = ip.map_or_else(|| "-".to_string(), |address| address.to_string());
        rows.push(AttachmentRow {
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
            address,
            host_veth: link.name.clone(),
            ip,
        });
    }
    Ok(rows)
}

/// The Mycelium interface's state as ADD would find it, or why ADD would fail.
pub fn node_status(interface: &str) -> Result<Node, NodeError> {
    let mut nl = open_host()?;
    node::inspect(&mut nl, interface)
}

/// The interfaces that hold a `400::/7` route in the main table: more than
/// one means a second Mycelium daemon (or a hand-made route) competes for
/// overlay traffic, and only one of them gets it.
pub fn overlay_route_interfaces() -> CniResult<Vec<String>> {
    let mut nl = open_host()?;
    let links = nl.links().wrap("list links")?;
    let mut found = Vec::new();
    for link in &links {
        let routes = nl.routes(link.index).wrap("list routes")?;
        let overlay = |r: &crate::netlink::route::Route| {
            r.destination == Some(naming::OVERLAY) && r.prefix_len == naming::OVERLAY_PREFIX_LEN
        };
        if routes.iter().any(overlay) {
            found.push(link.name.clone());
        }
    }
    Ok(found)
}
