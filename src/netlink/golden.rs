//! Golden bytes for every request the plugin sends. The expected bytes are
//! spelled out from the kernel's struct layouts (nlmsghdr, ifinfomsg,
//! ifaddrmsg, rtmsg, nlattr), independently of the builders in `attrs`.

use super::{address, link, route};
use netlink_packet_route::AddressFamily;
use std::net::{IpAddr, Ipv6Addr};

/// The request as `Netlink` would send it (every body here fits).
fn build(kind: u16, flags: u16, sequence: u32, body: &super::attrs::Body) -> Vec<u8> {
    super::build(kind, flags, sequence, body).unwrap()
}

const REQUEST: u16 = 0x01;
const ACK: u16 = 0x04;
const EXCL: u16 = 0x200;
const CREATE: u16 = 0x400;
const DUMP: u16 = 0x300;

fn nlmsghdr(total_len: usize, kind: u16, flags: u16, sequence: u32) -> Vec<u8> {
    let mut bytes = (total_len as u32).to_ne_bytes().to_vec();
    bytes.extend(kind.to_ne_bytes());
    bytes.extend(flags.to_ne_bytes());
    bytes.extend(sequence.to_ne_bytes());
    bytes.extend(0u32.to_ne_bytes()); // port id: the kernel fills it in
    bytes
}

/// struct ifinfomsg: family, pad, type, index, flags, change.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0, 0];
    bytes.extend(index.to_ne_bytes());
    bytes.extend(flags.to_ne_bytes());
    bytes.extend(change.to_ne_bytes());
    bytes
}

fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
    bytes.extend(kind.to_ne_bytes());
    bytes.extend(payload);
    while !bytes.len().is_multiple_of(4) {
        bytes.push(0);
    }
    bytes
}

fn c_str(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

fn message(kind: u16, flags: u16, sequence: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = nlmsghdr(16 + body.len(), kind, flags, sequence);
    bytes.extend(body);
    bytes
}

fn ip(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}

#[test]
fn link_get_by_name() {
    let mut body = ifinfomsg(0, 0, 0);
    body.extend(attr(3, &c_str("eth0"))); // IFLA_IFNAME
    let expected = message(18, REQUEST | ACK, 7, &body);
    assert_eq!(
        build(18, ACK, 7, &link::get_by_name_request("eth0")),
        expected
    );
}

#[test]
fn link_get_by_index() {
    let expected = message(18, REQUEST | ACK, 8, &ifinfomsg(42, 0, 0));
    assert_eq!(build(18, ACK, 8, &link::index_request(42)), expected);
}

#[test]
fn veth_pair_with_peer_in_pod_namespace() {
    let mut peer = ifinfomsg(0, 0, 0);
    peer.extend(attr(3, &c_str("eth0"))); // IFLA_IFNAME
    peer.extend(attr(4, &1400u32.to_ne_bytes())); // IFLA_MTU
    peer.extend(attr(28, &9i32.to_ne_bytes())); // IFLA_NET_NS_FD
    let info_data = attr(1, &peer); // VETH_INFO_PEER
    let mut link_info = attr(1, &c_str("veth")); // IFLA_INFO_KIND
    link_info.extend(attr(2, &info_data)); // IFLA_INFO_DATA
    let mut body = ifinfomsg(0, 1, 1); // IFF_UP in flags and change mask
    body.extend(attr(3, &c_str("myc0123456789ab")));
    body.extend(attr(4, &1400u32.to_ne_bytes()));
    body.extend(attr(27, &0x8000_1234u32.to_ne_bytes())); // IFLA_GROUP
    body.extend(attr(18, &link_info)); // IFLA_LINKINFO
    let expected = message(16, REQUEST | ACK | CREATE | EXCL, 2, &body);
    let request = link::veth_request(&link::VethPair {
        host: "myc0123456789ab",
        group: 0x8000_1234,
        peer: "eth0",
        // SAFETY: only the number is used, never the descriptor.
        netns: unsafe { std::os::fd::BorrowedFd::borrow_raw(9) },
        mtu: 1400,
    });
    assert_eq!(build(16, ACK | CREATE | EXCL, 2, &request), expected);
}

#[test]
fn link_set_alias_set_up_delete_and_dump() {
    let mut alias = ifinfomsg(12, 0, 0);
    alias.extend(attr(20, &c_str("net/c1/eth0"))); // IFLA_IFALIAS
    assert_eq!(
        build(16, ACK, 3, &link::set_alias_request(12, "net/c1/eth0")),
        message(16, REQUEST | ACK, 3, &alias)
    );
    let mut group = ifinfomsg(12, 0, 0);
    group.extend(attr(27, &7u32.to_ne_bytes())); // IFLA_GROUP
    assert_eq!(
        build(16, ACK, 3, &link::set_group_request(12, 7)),
        message(16, REQUEST | ACK, 3, &group)
    );
    let up = ifinfomsg(1, 1, 1);
    assert_eq!(
        build(16, ACK, 4, &link::set_up_request(1)),
        message(16, REQUEST | ACK, 4, &up)
    );
    let delete = ifinfomsg(12, 0, 0);
    assert_eq!(
        build(17, ACK, 5, &link::index_request(12)),
        message(17, REQUEST | ACK, 5, &delete)
    );
    let dump = ifinfomsg(0, 0, 0);
    assert_eq!(
        build(18, DUMP, 6, &link::dump_request()),
        message(18, REQUEST | DUMP, 6, &dump)
    );
}

#[test]
fn address_add_without_dad_and_list() {
    let mut body = vec![10, 128, 0, 0]; // AF_INET6, /128, header flags, scope universe
    body.extend(5u32.to_ne_bytes()); // ifindex
    body.extend(attr(1, &ip("5fd::ff0f:1").octets())); // IFA_ADDRESS
    body.extend(attr(8, &0x02u32.to_ne_bytes())); // IFA_FLAGS = IFA_F_NODAD
    let request = address::add_request(5, IpAddr::V6(ip("5fd::ff0f:1")).into());
    assert_eq!(
        build(20, ACK | CREATE | EXCL, 9, &request),
        message(20, REQUEST | ACK | CREATE | EXCL, 9, &body)
    );
    let mut list = vec![10, 0, 0, 0];
    list.extend(5u32.to_ne_bytes());
    assert_eq!(
        build(
            22,
            DUMP,
            10,
            &address::list_request(AddressFamily::Inet6, 5)
        ),
        message(22, REQUEST | DUMP, 10, &list)
    );
}

/// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
fn rtmsg(dst_len: u8, table: u8, protocol: u8, kind: u8) -> Vec<u8> {
    let mut bytes = vec![10, dst_len, 0, 0, table, protocol, 0, kind];
    bytes.extend(0u32.to_ne_bytes());
    bytes
}

#[test]
fn route_add_host_claim_and_gateway_route() {
    // The /128 claim on the host: main table, RTPROT_STATIC, RTN_UNICAST.
    let mut claim = rtmsg(128, 254, 4, 1);
    claim.extend(attr(1, &ip("5fd::ff0f:1").octets())); // RTA_DST
    claim.extend(attr(4, &8u32.to_ne_bytes())); // RTA_OIF
    let request = route::add_request(&route::NewRoute {
        destination: IpAddr::V6(ip("5fd::ff0f:1")).into(),
        gateway: None,
        oif: 8,
    });
    assert_eq!(
        build(24, ACK | CREATE | EXCL, 1, &request),
        message(24, REQUEST | ACK | CREATE | EXCL, 1, &claim)
    );
    // 400::/7 via fe80::1 in the pod.
    let mut overlay = rtmsg(7, 254, 4, 1);
    overlay.extend(attr(1, &ip("400::").octets()));
    overlay.extend(attr(5, &ip("fe80::1").octets())); // RTA_GATEWAY
    overlay.extend(attr(4, &2u32.to_ne_bytes()));
    let request = route::add_request(&route::NewRoute {
        destination: "400::/7".parse().unwrap(),
        gateway: Some(IpAddr::V6(ip("fe80::1"))),
        oif: 2,
    });
    assert_eq!(
        build(24, ACK | CREATE | EXCL, 2, &request),
        message(24, REQUEST | ACK | CREATE | EXCL, 2, &overlay)
    );
}

#[test]
fn route_lookup_and_list() {
    let mut lookup = rtmsg(128, 0, 0, 0);
    lookup.extend(attr(1, &ip("5fc::1").octets()));
    assert_eq!(
        build(26, ACK, 3, &route::lookup_request(IpAddr::V6(ip("5fc::1")))),
        message(26, REQUEST | ACK, 3, &lookup)
    );
    let mut list = rtmsg(0, 254, 0, 0);
    list.extend(attr(4, &8u32.to_ne_bytes()));
    assert_eq!(
        build(
            26,
            DUMP,
            4,
            &route::list_request(AddressFamily::Inet6, Some(8))
        ),
        message(26, REQUEST | DUMP, 4, &list)
    );
}
