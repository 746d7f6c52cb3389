//! Differential tests against netlink-packet-route (NPR): every rtnetlink
//! request we build parses back through NPR's full message types into the
//! message we meant, and every reply of the fuzz corpus reads the same
//! through our hand parsers and NPR's. Duplicate attributes are read
//! last-wins on both sides, as the kernel never sends them but a fuzzed
//! reply may.

use super::address::{self, Address};
use super::link::{self, Link, RTM_NEWLINK};
use super::reply::Messages;
use super::route::{self, NewRoute, RTM_NEWROUTE, Route};
use ipnetwork::IpNetwork;
use netlink_packet_core::Parseable;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use std::net::IpAddr;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn net(text: &str) -> IpNetwork {
    text.parse().unwrap()
}

fn link_of(body: &[u8]) -> LinkMessage {
    LinkMessage::parse(body).unwrap()
}

fn route_of(body: &[u8]) -> RouteMessage {
    RouteMessage::parse(body).unwrap()
}

#[test]
fn veth_request_is_the_link_message_we_meant() {
    // SAFETY: only the number is used, never the descriptor.
    let netns = unsafe { std::os::fd::BorrowedFd::borrow_raw(9) };
    let request = link::veth_request(&link::VethPair {
        host: "myc0123456789ab",
        group: 0x8000_1234,
        peer: "eth0",
        netns,
        mtu: 1400,
    });
    let message = link_of(&request.bytes);
    assert_eq!(message.header.flags, LinkFlags::Up);
    assert_eq!(message.header.change_mask, LinkFlags::Up);
    let mut peer = LinkMessage::default();
    peer.attributes = vec![
        LinkAttribute::IfName("eth0".into()),
        LinkAttribute::Mtu(1400),
        LinkAttribute::NetNsFd(9),
    ];
    assert_eq!(
        message.attributes,
        vec![
            LinkAttribute::IfName("myc0123456789ab".into()),
            LinkAttribute::Mtu(1400),
            LinkAttribute::Group(0x8000_1234),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]),
        ]
    );
}

#[test]
fn small_link_requests_are_what_we_meant() {
    let alias = link_of(&link::set_alias_request(12, "net/c1/eth0").bytes);
    assert_eq!(alias.header.index, 12);
    assert_eq!(
        alias.attributes,
        vec![LinkAttribute::IfAlias("net/c1/eth0".into())]
    );
    let group = link_of(&link::set_group_request(12, 7).bytes);
    assert_eq!(group.attributes, vec![LinkAttribute::Group(7)]);
    let up = link_of(&link::set_up_request(3).bytes);
    assert_eq!((up.header.index, up.header.flags), (3, LinkFlags::Up));
    let by_name = link_of(&link::get_by_name_request("eth0").bytes);
    assert_eq!(
        by_name.attributes,
        vec![LinkAttribute::IfName("eth0".into())]
    );
    assert!(link_of(&link::dump_request().bytes).attributes.is_empty());
}

#[test]
fn route_requests_of_both_families_are_what_we_meant() {
    let cases = [
        (net("5fd::ff0f:1/128"), None, RouteScope::Universe),
        (net("400::/7"), Some(ip("fe80::1")), RouteScope::Universe),
        (net("10.200.0.7/32"), None, RouteScope::Link),
        (
            net("0.0.0.0/0"),
            Some(ip("169.254.1.1")),
            RouteScope::Universe,
        ),
    ];
    for (destination, gateway, scope) in cases {
        let request = route::add_request(&NewRoute {
            destination,
            gateway,
            oif: 8,
        });
        let message = route_of(&request.bytes);
        let header = &message.header;
        assert_eq!(header.destination_prefix_length, destination.prefix());
        assert_eq!(
            (header.protocol, header.scope, header.kind, header.table),
            (RouteProtocol::Static, scope, RouteType::Unicast, 254),
            "{destination}"
        );
        let mut expected = vec![RouteAttribute::Destination(destination.ip().into())];
        expected.extend(gateway.map(|g| RouteAttribute::Gateway(g.into())));
        expected.push(RouteAttribute::Oif(8));
        assert_eq!(message.attributes, expected, "{destination}");
    }
    let lookup = route_of(&route::lookup_request(ip("10.1.2.3")).bytes);
    assert_eq!(lookup.header.address_family, AddressFamily::Inet);
    assert_eq!(lookup.header.destination_prefix_length, 32);
    let list = route_of(&route::list_request(AddressFamily::Inet6, Some(4)).bytes);
    assert_eq!(list.attributes, vec![RouteAttribute::Oif(4)]);
}

#[test]
fn address_requests_of_both_families_are_what_we_meant() {
    let v6 = AddressMessage::parse(&address::add_request(5, net("5fd::1/128")).bytes).unwrap();
    assert_eq!(v6.header.family, AddressFamily::Inet6);
    assert_eq!(
        v6.attributes,
        vec![
            AddressAttribute::Address(ip("5fd::1")),
            AddressAttribute::Flags(AddressFlags::Nodad),
        ]
    );
    let v4 = AddressMessage::parse(&address::add_request(5, net("169.254.1.1/32")).bytes).unwrap();
    assert_eq!(
        (v4.header.family, v4.header.prefix_len),
        (AddressFamily::Inet, 32)
    );
    assert_eq!(
        v4.attributes,
        vec![
            AddressAttribute::Local(ip("169.254.1.1")),
            AddressAttribute::Address(ip("169.254.1.1")),
        ]
    );
}

/// Our reading of a link against NPR's, last-wins.
fn link_as_npr_reads_it(message: &LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        flags: message.header.flags.bits(),
        ..Link::default()
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name.clone_from(name),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Address(mac) => link.mac.clone_from(mac),
            LinkAttribute::IfAlias(alias) => link.alias.clone_from(alias),
            LinkAttribute::Link(peer) => link.peer_index = *peer,
            LinkAttribute::Group(group) => link.group = *group,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = kind.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn route_as_npr_reads_it(message: &RouteMessage) -> Option<Route> {
    let family = message.header.address_family;
    let mut destination: IpAddr = match family {
        AddressFamily::Inet => ip("0.0.0.0"),
        _ => ip("::"),
    };
    let mut route = Route {
        destination: IpNetwork::new(destination, 0).ok()?,
        gateway: None,
        oif: 0,
        table: message.header.table,
    };
    let to_ip = |address: &RouteAddress| match address {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    };
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(address) => destination = to_ip(address)?,
            RouteAttribute::Gateway(address) => route.gateway = to_ip(address),
            RouteAttribute::Oif(oif) => route.oif = *oif,
            _ => {}
        }
    }
    route.destination =
        IpNetwork::new(destination, message.header.destination_prefix_length).ok()?;
    Some(route)
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/netlink");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let hex = text.split_whitespace();
            hex.map(|byte| u8::from_str_radix(byte, 16).unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn corpus_replies_read_the_same_through_ours_and_npr() {
    let (mut links, mut routes, mut addresses) = (0, 0, 0);
    for datagram in corpus() {
        for message in Messages::new(&datagram).flatten() {
            match message.kind {
                RTM_NEWLINK => {
                    let theirs = link_as_npr_reads_it(&link_of(message.body));
                    assert_eq!(Link::parse(message.body), Some(theirs));
                    links += 1;
                }
                RTM_NEWROUTE => {
                    let theirs = route_as_npr_reads_it(&route_of(message.body));
                    assert_eq!(Route::parse(message.body), theirs);
                    routes += 1;
                }
                address::RTM_NEWADDR => {
                    assert!(Address::parse(message.body).is_some());
                    addresses += 1;
                }
                _ => {}
            }
        }
    }
    assert!(
        links > 0 && routes > 0 && addresses > 0,
        "{links} {routes} {addresses}"
    );
}
