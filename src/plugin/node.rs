//! The node's Mycelium interface: the checks ADD and STATUS make before
//! anything is created.

use super::kernel_error;
use super::naming;
use crate::cni::error::{CniError, CniResult, TRY_AGAIN_LATER};
use crate::netlink::Netlink;
use crate::netlink::address::IFA_F_TENTATIVE;
use std::net::Ipv6Addr;

const IFA_F_DADFAILED: u32 = 0x08;
const RT_SCOPE_UNIVERSE: u8 = 0;

pub struct Node {
    pub mtu: u32,
    /// The node's own overlay address; its first 64 bits are the node's /64.
    pub address: Ipv6Addr,
}

impl Node {
    pub fn prefix(&self) -> u64 {
        naming::node_prefix(self.address)
    }

    pub fn owns(&self, address: Ipv6Addr) -> bool {
        naming::node_prefix(address) == self.prefix()
    }
}

fn not_ready(msg: String) -> CniError {
    CniError::new(TRY_AGAIN_LATER, msg)
}

/// An overlay address outside the node's own /64 (its neighbour /64), to ask
/// the kernel where overlay traffic leaves. Not `400::` itself: with
/// forwarding on, that is the subnet-router anycast address, a local route.
fn overlay_probe(node_address: Ipv6Addr) -> Ipv6Addr {
    let neighbour = u128::from(naming::node_prefix(node_address) ^ 1);
    Ipv6Addr::from((neighbour << 64) | 1)
}

/// Exists, is up, has a usable global address in 400::/7, and 400::/7
/// routes through it. Errors are code 11 (try again later): the daemon may
/// be restarting.
pub fn inspect(nl: &mut Netlink, name: &str) -> CniResult<Node> {
    let link = nl
        .link_by_name(name)
        .map_err(|e| kernel_error("look up Mycelium interface", e))?
        .ok_or_else(|| not_ready(format!("failed to find interface {name}")))?;
    if !link.is_up() {
        return Err(not_ready(format!("interface {name} is down")));
    }
    let addresses = nl
        .addresses(link.index)
        .map_err(|e| kernel_error("list addresses of Mycelium interface", e))?;
    let usable = |flags: u32| flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0;
    let address = addresses
        .iter()
        .find(|a| naming::in_overlay(a.address) && usable(a.flags) && a.scope == RT_SCOPE_UNIVERSE)
        .map(|a| a.address)
        .ok_or_else(|| not_ready(format!("no global IPv6 address in 400::/7 on {name}")))?;
    let oif = match nl.lookup_route(overlay_probe(address)) {
        Ok(route) => route.oif,
        Err(e) if e.errno == libc::ENETUNREACH || e.errno == libc::EHOSTUNREACH => 0,
        Err(e) => return Err(kernel_error("look up the route into 400::/7", e)),
    };
    if oif != link.index {
        return Err(not_ready(format!("400::/7 does not route via {name}")));
    }
    Ok(Node {
        mtu: link.mtu,
        address,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_is_in_the_overlay_but_not_in_the_node_64() {
        for node in [
            "5fd:a395:1a8d:501d:f650:6887:2bd4:ee49",
            "400::5",
            "5ff:ffff:ffff:ffff::1",
        ] {
            let node: Ipv6Addr = node.parse().unwrap();
            let probe = overlay_probe(node);
            assert!(naming::in_overlay(probe), "{probe}");
            assert_ne!(naming::node_prefix(probe), naming::node_prefix(node));
        }
    }
}
