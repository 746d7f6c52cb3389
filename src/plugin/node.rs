//! The node's Mycelium interface: the checks ADD and STATUS make before
//! anything is created.

use super::naming;
use crate::cni::error::{CniError, TRY_AGAIN_LATER, Wrap};
use crate::netlink::Netlink;
use netlink_packet_route::AddressFamily;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

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

/// Why the Mycelium interface cannot take pods yet, in the order checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unready {
    Missing,
    Down,
    NoOverlayAddress,
    NotRouting,
}

/// The Mycelium interface, by its configured name, and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub struct NotReady {
    pub interface: String,
    pub reason: Unready,
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.interface;
        match self.reason {
            Unready::Missing => write!(f, "failed to find interface {name}"),
            Unready::Down => write!(f, "interface {name} is down"),
            Unready::NoOverlayAddress => write!(f, "no global IPv6 address in 400::/7 on {name}"),
            Unready::NotRouting => write!(f, "400::/7 does not route via {name}"),
        }
    }
}

impl NotReady {
    /// What an operator does about it.
    pub fn fix(&self) -> &'static str {
        match self.reason {
            Unready::Missing => {
                "start the Mycelium daemon, or set myceliumInterface to its --tun-name"
            }
            Unready::Down => "ip link set dev INTERFACE up, or restart the Mycelium daemon",
            Unready::NoOverlayAddress | Unready::NotRouting => {
                "check the Mycelium daemon's log; ip -6 route get 5ff::1 shows where overlay traffic goes"
            }
        }
    }
}

/// `inspect` fails because the interface is not ready, or because the
/// kernel could not be asked.
#[derive(Debug)]
pub enum NodeError {
    NotReady(NotReady),
    Kernel(CniError),
}

impl From<CniError> for NodeError {
    fn from(error: CniError) -> Self {
        NodeError::Kernel(error)
    }
}

/// Not ready is code 11 (try again later): the daemon may be restarting.
impl From<NodeError> for CniError {
    fn from(error: NodeError) -> Self {
        match error {
            NodeError::NotReady(not_ready) => CniError::new(TRY_AGAIN_LATER, not_ready.to_string()),
            NodeError::Kernel(error) => error,
        }
    }
}

/// An overlay address outside the node's own /64 (its neighbour /64), to ask
/// the kernel where overlay traffic leaves. Not `400::` itself: with
/// forwarding on, that is the subnet-router anycast address, a local route.
fn overlay_probe(node_address: Ipv6Addr) -> Ipv6Addr {
    let neighbour = u128::from(naming::node_prefix(node_address) ^ 1);
    Ipv6Addr::from((neighbour << 64) | 1)
}

/// Exists, is up, has a usable global address in 400::/7, and 400::/7
/// routes through it.
pub fn inspect(nl: &mut Netlink, name: &str) -> Result<Node, NodeError> {
    let not_ready = |reason| {
        NodeError::NotReady(NotReady {
            interface: name.into(),
            reason,
        })
    };
    let link = nl
        .link_by_name(name)
        .wrap("look up Mycelium interface")?
        .ok_or_else(|| not_ready(Unready::Missing))?;
    if !link.is_up() {
        return Err(not_ready(Unready::Down));
    }
    let addresses = nl
        .addresses(AddressFamily::Inet6, link.index)
        .wrap("list addresses of Mycelium interface")?;
    let address = addresses
        .iter()
        .filter(|a| a.is_usable_global())
        .find_map(|a| match a.address {
            IpAddr::V6(v6) if naming::in_overlay(v6) => Some(v6),
            _ => None,
        })
        .ok_or_else(|| not_ready(Unready::NoOverlayAddress))?;
    let oif = match nl.lookup_route(IpAddr::V6(overlay_probe(address))) {
        Err(e) if e.errno == libc::ENETUNREACH || e.errno == libc::EHOSTUNREACH => 0,
        other => other.wrap("look up the route into 400::/7")?.oif,
    };
    if oif != link.index {
        return Err(not_ready(Unready::NotRouting));
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

    #[test]
    fn not_ready_prints_itself_and_knows_its_fix() {
        let cases = [
            (
                Unready::Missing,
                "failed to find interface myc7",
                "--tun-name",
            ),
            (Unready::Down, "interface myc7 is down", "ip link set"),
            (
                Unready::NoOverlayAddress,
                "no global IPv6 address in 400::/7 on myc7",
                "daemon's log",
            ),
            (
                Unready::NotRouting,
                "400::/7 does not route via myc7",
                "route get",
            ),
        ];
        for (reason, text, fix) in cases {
            let not_ready = NotReady {
                interface: "myc7".into(),
                reason,
            };
            assert_eq!(not_ready.to_string(), text);
            assert!(not_ready.fix().contains(fix), "{reason:?}");
            let error = CniError::from(NodeError::NotReady(not_ready));
            assert_eq!((error.code, error.msg.as_str()), (TRY_AGAIN_LATER, text));
        }
    }
}
