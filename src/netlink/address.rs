//! IPv6 addresses: add one (no DAD), list those of one link.

use super::attrs::Body;
use super::reply::{self, Attrs};
use super::{Netlink, NlError, NlResult};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use std::net::Ipv6Addr;

pub const RTM_NEWADDR: u16 = 20;
pub const RTM_GETADDR: u16 = 22;

const IFADDR_LEN: usize = 8;
const IFA_ADDRESS: u16 = 1;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_TENTATIVE: u32 = 0x40;
const RT_SCOPE_UNIVERSE: u8 = 0;

#[derive(Debug, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub prefix_len: u8,
    pub scope: u8,
    pub address: Ipv6Addr,
    pub flags: u32,
}

impl Address {
    /// Global scope, and neither still in nor failed by duplicate address
    /// detection: an address the node can send from.
    pub fn is_usable_global(&self) -> bool {
        self.scope == RT_SCOPE_UNIVERSE && self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0
    }

    /// Reads an IPv6 RTM_NEWADDR body; `None` for other families or malformed ones.
    pub fn parse(body: &[u8]) -> Option<Address> {
        if *body.first()? != libc::AF_INET6 as u8 {
            return None;
        }
        let attrs = body.get(IFADDR_LEN..)?;
        let address = reply::ipv6(Attrs::new(attrs).value_of(IFA_ADDRESS)?)?;
        let flags = match Attrs::new(attrs).value_of(IFA_FLAGS) {
            Some(value) => reply::u32_at(value, 0)?,
            None => u32::from(*body.get(2)?),
        };
        Some(Address {
            index: reply::u32_at(body, 4)?,
            prefix_len: *body.get(1)?,
            scope: *body.get(3)?,
            address,
            flags,
        })
    }
}

/// struct ifaddrmsg: family, prefix length, flags, scope, index.
fn ifaddrmsg(index: u32, prefix_len: u8) -> Body {
    let mut header = [
        libc::AF_INET6 as u8,
        prefix_len,
        0,
        RT_SCOPE_UNIVERSE,
        0,
        0,
        0,
        0,
    ];
    header[4..].copy_from_slice(&index.to_ne_bytes());
    Body::with_header(&header)
}

pub fn add_request(index: u32, address: Ipv6Addr, prefix_len: u8) -> Body {
    let mut message = ifaddrmsg(index, prefix_len);
    message
        .put(IFA_ADDRESS, &address.octets())
        .u32(IFA_FLAGS, IFA_F_NODAD);
    message
}

/// A strict-checked dump request: the kernel filters by link index.
pub fn list_request(index: u32) -> Body {
    ifaddrmsg(index, 0)
}

impl Netlink {
    /// Adds `address/prefix_len` with IFA_F_NODAD, so it is usable at once.
    pub fn add_address(&mut self, index: u32, address: Ipv6Addr, prefix_len: u8) -> NlResult<()> {
        let request = add_request(index, address, prefix_len);
        self.change(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &request)
    }

    pub fn addresses(&mut self, index: u32) -> NlResult<Vec<Address>> {
        let mut found = Vec::new();
        self.dump(RTM_GETADDR, &list_request(index), &mut |message| {
            if message.kind == RTM_NEWADDR {
                let address = Address::parse(message.body).ok_or_else(NlError::protocol)?;
                if address.index == index {
                    found.push(address);
                }
            }
            Ok(())
        })?;
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
            address: Ipv6Addr::LOCALHOST,
            flags,
        };
        assert!(address(RT_SCOPE_UNIVERSE, 0x80).is_usable_global()); // IFA_F_PERMANENT
        assert!(!address(RT_SCOPE_UNIVERSE, IFA_F_TENTATIVE).is_usable_global());
        assert!(!address(RT_SCOPE_UNIVERSE, IFA_F_DADFAILED).is_usable_global());
        assert!(!address(253, 0).is_usable_global()); // RT_SCOPE_LINK
    }
}
