//! What `mycelium-cni list` and `doctor` read: the attachments on this node
//! and the node's own state, from the kernel alone.

use super::host_veth::is_ours;
use super::naming::{self, parse_alias};
use super::node::{self, Node, NodeError};
use super::open_host;
use crate::cni::error::{CniResult, Wrap};
use crate::netlink::Netlink;
use crate::netlink::route::Route;
use ipnetwork::IpNetwork;
use netlink_packet_route::AddressFamily;
use std::net::{IpAddr, Ipv6Addr};

pub struct AttachmentRow {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    /// The pod address (the host veth's /128 route), or "-".
    pub address: String,
    /// The node-local IPv4 address (egress `nat`), or "-".
    pub ipv4: String,
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
        let ip = match host_route(&mut nl, AddressFamily::Inet6, link.index)? {
            Some(IpAddr::V6(ip)) => Some(ip),
            _ => None,
        };
        let ipv4 = host_route(&mut nl, AddressFamily::Inet, link.index)?;
        let text = |ip: Option<IpAddr>| ip.map_or_else(|| "-".to_string(), |ip| ip.to_string());
        rows.push(AttachmentRow {
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
            address: text(ip.map(IpAddr::V6)),
            ipv4: text(ipv4),
            host_veth: link.name.clone(),
            ip,
        });
    }
    Ok(rows)
}

/// The address of the host route (/128 or /32) of `family` to a host
/// veth: the pod's address of that family.
fn host_route(nl: &mut Netlink, family: AddressFamily, index: u32) -> CniResult<Option<IpAddr>> {
    let routes = nl.routes(family, index).wrap("list routes")?;
    let host =
        |r: &&Route| r.destination.prefix() == if r.destination.is_ipv4() { 32 } else { 128 };
    Ok(routes.iter().find(host).map(|route| route.destination.ip()))
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
    let overlay = IpNetwork::new(IpAddr::V6(naming::OVERLAY), naming::OVERLAY_PREFIX_LEN);
    let routes = nl
        .main_routes(AddressFamily::Inet6, None)
        .wrap("list routes")?;
    let links = nl.links().wrap("list links")?;
    let name = |index: u32| {
        links
            .iter()
            .find(|l| l.index == index)
            .map(|l| l.name.clone())
    };
    let found = routes
        .iter()
        .filter(|r| overlay.as_ref().is_ok_and(|o| r.destination == *o))
        .filter_map(|r| name(r.oif));
    Ok(found.collect())
}
