//! Addresses of either family: add one (IPv6 without DAD), list those of
//! one link. Requests and replies are netlink-packet-route's
//! `AddressMessage`; the family follows from the address.

use super::attrs::Body;
use super::{Netlink, NlError, NlResult};
use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, Parseable};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use std::net::IpAddr;

pub const RTM_NEWADDR: u16 = libc::RTM_NEWADDR;
pub const RTM_GETADDR: u16 = libc::RTM_GETADDR;

#[derive(Debug, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub prefix_len: u8,
    pub scope: AddressScope,
    pub address: IpAddr,
    pub flags: AddressFlags,
}

impl Address {
    /// Global scope, and neither still in nor failed by duplicate address
    /// detection: an address the node can send from.
    pub fn is_usable_global(&self) -> bool {
        self.scope == AddressScope::Universe
            && !self
                .flags
                .intersects(AddressFlags::Tentative | AddressFlags::Dadfailed)
    }

    /// Reads an RTM_NEWADDR body; `None` when it is malformed or has no
    /// IFA_ADDRESS. IFA_FLAGS (32 bits) wins over the header's 8-bit flags.
    pub fn parse(body: &[u8]) -> Option<Address> {
        let message = AddressMessage::parse(body).ok()?;
        let header = &message.header;
        let mut address = None;
        let mut flags = AddressFlags::from_bits_retain(u32::from(header.flags.bits()));
        for attribute in &message.attributes {
            match attribute {
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Flags(all) => flags = *all,
                _ => {}
            }
        }
        Some(Address {
            index: header.index,
            prefix_len: header.prefix_len,
            scope: header.scope,
            address: address?,
            flags,
        })
    }
}

pub fn family_of(address: IpAddr) -> AddressFamily {
    match address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The address with its prefix length on link `index`. IPv6 ones get
/// IFA_F_NODAD, so they are usable at once; IPv4 has no DAD but needs
/// IFA_LOCAL (the kernel refuses it without: "Local address is not
/// supplied"), which `ip addr add` also sends.
pub fn add_request(index: u32, address: IpNetwork) -> Body {
    let mut message = AddressMessage::default();
    message.header.family = family_of(address.ip());
    message.header.prefix_len = address.prefix();
    message.header.index = index;
    message
        .attributes
        .push(AddressAttribute::Address(address.ip()));
    if address.is_ipv6() {
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    } else {
        message
            .attributes
            .insert(0, AddressAttribute::Local(address.ip()));
    }
    Body::emitted(&message)
}

/// A strict-checked dump request: the kernel filters by family and link.
pub fn list_request(family: AddressFamily, index: u32) -> Body {
    let mut message = AddressMessage::default();
    message.header.family = family;
    message.header.flags = AddressHeaderFlags::empty();
    message.header.index = index;
    Body::emitted(&message)
}

impl Netlink {
    /// Adds `address/prefix` (NODAD for IPv6), failing with EEXIST when the
    /// link has it already.
    pub fn add_address(&mut self, index: u32, address: IpNetwork) -> NlResult<()> {
        let request = add_request(index, address);
        self.change(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &request)
    }

    /// The addresses of `family` on link `index`.
    pub fn addresses(&mut self, family: AddressFamily, index: u32) -> NlResult<Vec<Address>> {
        let mut found = Vec::new();
        for object in self.dump(RTM_GETADDR, &list_request(family, index))? {
            if object.kind == RTM_NEWADDR {
                let address = Address::parse(&object.body).ok_or_else(NlError::protocol)?;
                if address.index == index {
                    found.push(address);
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_global_means_universe_scope_and_dad_done() {
        let address = |scope, flags| Address {
            index: 1,
            prefix_len: 7,
            scope,
            address: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            flags,
        };
        let universe = AddressScope::Universe;
        assert!(address(universe, AddressFlags::Permanent).is_usable_global());
        assert!(!address(universe, AddressFlags::Tentative).is_usable_global());
        assert!(!address(universe, AddressFlags::Dadfailed).is_usable_global());
        assert!(!address(AddressScope::Link, AddressFlags::empty()).is_usable_global());
    }
}
