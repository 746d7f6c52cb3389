//! IPv6 routes in the main table: add (exclusive), look up, list by link.

use super::attrs::Body;
use super::reply::{self, Attrs};
use super::{Netlink, NlError, NlResult};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use std::net::Ipv6Addr;

pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_GETROUTE: u16 = 26;

const RTMSG_LEN: usize = 12;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RTN_UNICAST: u8 = 1;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub destination: Option<Ipv6Addr>,
    pub prefix_len: u8,
    pub gateway: Option<Ipv6Addr>,
    pub oif: u32,
    pub table: u8,
}

impl Route {
    pub fn parse(body: &[u8]) -> Option<Route> {
        if *body.first()? != libc::AF_INET6 as u8 {
            return None;
        }
        let mut route = Route {
            prefix_len: *body.get(1)?,
            table: *body.get(4)?,
            ..Route::default()
        };
        for (kind, value) in Attrs::new(body.get(RTMSG_LEN..)?) {
            match kind {
                RTA_DST => route.destination = Some(reply::ipv6(value)?),
                RTA_GATEWAY => route.gateway = Some(reply::ipv6(value)?),
                RTA_OIF => route.oif = reply::u32_at(value, 0)?,
                _ => {}
            }
        }
        Some(route)
    }
}

/// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope
/// (universe: 0), type, flags.
fn rtmsg(dst_len: u8, table: u8, protocol: u8, kind: u8) -> Body {
    let header = [
        libc::AF_INET6 as u8,
        dst_len,
        0,
        0,
        table,
        protocol,
        0,
        kind,
    ];
    let mut body = Body::with_header(&header);
    body.bytes.extend_from_slice(&0u32.to_ne_bytes());
    body
}

/// `destination/prefix_len dev oif`, optionally `via gateway`.
pub fn add_request(
    destination: Ipv6Addr,
    prefix_len: u8,
    gateway: Option<Ipv6Addr>,
    oif: u32,
) -> Body {
    let mut message = rtmsg(prefix_len, RT_TABLE_MAIN, RTPROT_STATIC, RTN_UNICAST);
    message.put(RTA_DST, &destination.octets());
    if let Some(gateway) = gateway {
        message.put(RTA_GATEWAY, &gateway.octets());
    }
    message.u32(RTA_OIF, oif);
    message
}

/// `ip -6 route get destination`: the route the kernel would use.
pub fn lookup_request(destination: Ipv6Addr) -> Body {
    let mut message = rtmsg(128, 0, 0, 0);
    message.put(RTA_DST, &destination.octets());
    message
}

/// A strict-checked dump of the main table, filtered by output link.
pub fn list_request(oif: u32) -> Body {
    let mut message = rtmsg(0, RT_TABLE_MAIN, 0, 0);
    message.u32(RTA_OIF, oif);
    message
}

impl Netlink {
    /// Adds the route with NLM_F_EXCL: EEXIST when one with that destination exists.
    pub fn add_route(
        &mut self,
        destination: Ipv6Addr,
        prefix_len: u8,
        gateway: Option<Ipv6Addr>,
        oif: u32,
    ) -> NlResult<()> {
        let request = add_request(destination, prefix_len, gateway, oif);
        self.change(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &request)
    }

    pub fn lookup_route(&mut self, destination: Ipv6Addr) -> NlResult<Route> {
        let body = self.get(RTM_GETROUTE, &lookup_request(destination))?;
        Route::parse(&body).ok_or_else(NlError::protocol)
    }

    pub fn routes(&mut self, oif: u32) -> NlResult<Vec<Route>> {
        let mut found = Vec::new();
        self.dump(RTM_GETROUTE, &list_request(oif), &mut |message| {
            let route = (message.kind == RTM_NEWROUTE)
                .then(|| Route::parse(message.body))
                .flatten();
            if let Some(route) = route.filter(|r| r.oif == oif && r.table == RT_TABLE_MAIN) {
                found.push(route);
            }
            Ok(())
        })?;
        Ok(found)
    }
}
