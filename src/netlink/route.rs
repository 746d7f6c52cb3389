//! Routes of either family in the main table: add (exclusive), look up,
//! list by link. The header is netlink-packet-route's `RouteHeader`; the
//! attributes are built and read by hand (see `netlink/mod.rs` for why).
//! The family follows from the destination's type.

use super::address::family_of;
use super::attrs::Body;
use super::reply::{self, Attrs};
use super::{Netlink, NlError, NlResult};
use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{RouteHeader, RouteProtocol, RouteScope, RouteType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const RTM_NEWROUTE: u16 = libc::RTM_NEWROUTE;
pub const RTM_GETROUTE: u16 = libc::RTM_GETROUTE;
const RTMSG_LEN: usize = 12;
const RT_TABLE_MAIN: u8 = libc::RT_TABLE_MAIN;

/// A route as the kernel reports it. A route without RTA_DST (a default
/// route) has the family's unspecified address as its destination.
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    pub destination: IpNetwork,
    pub gateway: Option<IpAddr>,
    pub oif: u32,
    pub table: u8,
}

/// A route to add: `destination dev oif [via gateway]`, in the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewRoute {
    pub destination: IpNetwork,
    pub gateway: Option<IpAddr>,
    pub oif: u32,
}

fn ip_of(family: AddressFamily, bytes: &[u8]) -> Option<IpAddr> {
    match family {
        AddressFamily::Inet => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?))),
        AddressFamily::Inet6 => Some(IpAddr::V6(reply::ipv6(bytes)?)),
        _ => None,
    }
}

fn unspecified(family: AddressFamily) -> Option<IpAddr> {
    match family {
        AddressFamily::Inet => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        AddressFamily::Inet6 => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        _ => None,
    }
}

impl Route {
    /// Reads an RTM_NEWROUTE body of either family; `None` for other
    /// families and malformed ones.
    pub fn parse(body: &[u8]) -> Option<Route> {
        let header = RouteHeader::parse(body).ok()?;
        let family = header.address_family;
        let mut destination = unspecified(family)?;
        let mut route = Route {
            destination: IpNetwork::new(destination, 0).ok()?,
            gateway: None,
            oif: 0,
            table: header.table,
        };
        for (kind, value) in Attrs::new(body.get(RTMSG_LEN..)?) {
            match kind {
                libc::RTA_DST => destination = ip_of(family, value)?,
                libc::RTA_GATEWAY => route.gateway = Some(ip_of(family, value)?),
                libc::RTA_OIF => route.oif = reply::u32_at(value, 0)?,
                _ => {}
            }
        }
        route.destination = IpNetwork::new(destination, header.destination_prefix_length).ok()?;
        Some(route)
    }
}

/// struct rtmsg, from NPR's header type.
fn rtmsg(family: AddressFamily, dst_len: u8, table: u8) -> RouteHeader {
    RouteHeader {
        address_family: family,
        destination_prefix_length: dst_len,
        table,
        ..RouteHeader::default()
    }
}

/// The request for `route`. As `ip route add` does, an IPv4 route without
/// a gateway is link-scoped (the pod's on-link gateway, a host route to a
/// pod); every other route is universe-scoped.
pub fn add_request(route: &NewRoute) -> Body {
    let destination = route.destination;
    let mut header = rtmsg(
        family_of(destination.ip()),
        destination.prefix(),
        RT_TABLE_MAIN,
    );
    header.protocol = RouteProtocol::Static;
    header.kind = RouteType::Unicast;
    if destination.is_ipv4() && route.gateway.is_none() {
        header.scope = RouteScope::Link;
    }
    let mut message = Body::emitted(&header);
    message.put(libc::RTA_DST, &octets(destination.network()));
    if let Some(gateway) = route.gateway {
        message.put(libc::RTA_GATEWAY, &octets(gateway));
    }
    message.u32(libc::RTA_OIF, route.oif);
    message
}

fn octets(address: IpAddr) -> Vec<u8> {
    match address {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// `ip route get destination`: the route the kernel would use.
pub fn lookup_request(destination: IpAddr) -> Body {
    let full = if destination.is_ipv4() { 32 } else { 128 };
    let mut message = Body::emitted(&rtmsg(family_of(destination), full, 0));
    message.put(libc::RTA_DST, &octets(destination));
    message
}

/// A strict-checked dump of the main table, filtered by family and, with
/// an index, by link.
pub fn list_request(family: AddressFamily, oif: Option<u32>) -> Body {
    let mut message = Body::emitted(&rtmsg(family, 0, RT_TABLE_MAIN));
    if let Some(oif) = oif {
        message.u32(libc::RTA_OIF, oif);
    }
    message
}

impl Netlink {
    /// Adds the route with NLM_F_EXCL: EEXIST when one with that destination exists.
    pub fn add_route(&mut self, route: &NewRoute) -> NlResult<()> {
        self.change(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &add_request(route))
    }

    pub fn lookup_route(&mut self, destination: IpAddr) -> NlResult<Route> {
        let body = self.get(RTM_GETROUTE, &lookup_request(destination))?;
        Route::parse(&body).ok_or_else(NlError::protocol)
    }

    /// The main table's routes of `family` out of link `oif`.
    pub fn routes(&mut self, family: AddressFamily, oif: u32) -> NlResult<Vec<Route>> {
        let mut routes = self.main_routes(family, Some(oif))?;
        routes.retain(|r| r.oif == oif);
        Ok(routes)
    }

    /// The main table's routes of `family`, of one link or all.
    pub fn main_routes(&mut self, family: AddressFamily, oif: Option<u32>) -> NlResult<Vec<Route>> {
        let mut found = Vec::new();
        for object in self.dump(RTM_GETROUTE, &list_request(family, oif))? {
            let route = (object.kind == RTM_NEWROUTE)
                .then(|| Route::parse(&object.body))
                .flatten();
            if let Some(route) = route.filter(|r| r.table == RT_TABLE_MAIN) {
                found.push(route);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dumped_default_route_is_the_unspecified_network() {
        // rtmsg for ::/0 with only RTA_GATEWAY and RTA_OIF, as the kernel
        // dumps `default via fe80::1 dev eth0`.
        let mut body = Body::emitted(&rtmsg(AddressFamily::Inet6, 0, RT_TABLE_MAIN));
        let gateway: Ipv6Addr = "fe80::1".parse().unwrap();
        body.put(libc::RTA_GATEWAY, &gateway.octets())
            .u32(libc::RTA_OIF, 7);
        let route = Route::parse(&body.bytes).unwrap();
        assert_eq!(route.destination, "::/0".parse::<IpNetwork>().unwrap());
        assert_eq!(route.gateway, Some(IpAddr::V6(gateway)));
        assert_eq!(route.oif, 7);
    }

    #[test]
    fn ipv4_routes_without_gateway_are_link_scoped() {
        let route = |gateway| NewRoute {
            destination: "10.0.0.0/8".parse().unwrap(),
            gateway,
            oif: 3,
        };
        const SCOPE: usize = 6;
        assert_eq!(add_request(&route(None)).bytes[SCOPE], libc::RT_SCOPE_LINK);
        let via = Some("169.254.1.1".parse().unwrap());
        assert_eq!(
            add_request(&route(via)).bytes[SCOPE],
            libc::RT_SCOPE_UNIVERSE
        );
    }
}
