//! Links: look up, create the veth pair, set alias/up, delete, dump. The
//! header is netlink-packet-route's `LinkHeader` with its typed flags; the
//! attributes are built and read by hand (see `netlink/mod.rs` for why).

use super::attrs::Body;
use super::reply::{self, Attrs};
use super::{Netlink, NlError, NlResult};
use libc::{
    IFLA_ADDRESS, IFLA_GROUP, IFLA_IFALIAS, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_LINK,
    IFLA_LINKINFO, IFLA_MTU, IFLA_NET_NS_FD,
};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{LinkFlags, LinkHeader};
use std::os::fd::{AsRawFd, BorrowedFd};

pub const RTM_NEWLINK: u16 = libc::RTM_NEWLINK;
pub const RTM_DELLINK: u16 = libc::RTM_DELLINK;
pub const RTM_GETLINK: u16 = libc::RTM_GETLINK;

const IFINFO_LEN: usize = 16;
/// `VETH_INFO_PEER` in linux/veth.h (not in libc).
const VETH_INFO_PEER: u16 = 1;

/// What the plugin needs to know about a link, read from an RTM_NEWLINK reply.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub flags: u32,
    pub name: String,
    pub mtu: u32,
    pub mac: Vec<u8>,
    pub alias: String,
    pub kind: String,
    /// IFLA_LINK: for a veth, the peer's index (in the peer's namespace).
    pub peer_index: u32,
    /// IFLA_GROUP: the interface group (0 by default).
    pub group: u32,
}

impl Link {
    pub fn is_up(&self) -> bool {
        LinkFlags::from_bits_retain(self.flags).contains(LinkFlags::Up)
    }

    pub fn is_veth(&self) -> bool {
        self.kind == "veth"
    }

    pub fn parse(body: &[u8]) -> Option<Link> {
        let header = LinkHeader::parse(body).ok()?;
        let mut link = Link {
            index: header.index,
            flags: header.flags.bits(),
            ..Link::default()
        };
        for (kind, value) in Attrs::new(body.get(IFINFO_LEN..)?) {
            match kind {
                IFLA_IFNAME => link.name = reply::c_string(value),
                IFLA_MTU => link.mtu = reply::u32_at(value, 0)?,
                IFLA_ADDRESS => link.mac = value.to_vec(),
                IFLA_IFALIAS => link.alias = reply::c_string(value),
                IFLA_LINK => link.peer_index = reply::u32_at(value, 0)?,
                IFLA_GROUP => link.group = reply::u32_at(value, 0)?,
                IFLA_LINKINFO => {
                    if let Some(kind) = Attrs::new(value).value_of(IFLA_INFO_KIND) {
                        link.kind = reply::c_string(kind);
                    }
                }
                _ => {}
            }
        }
        Some(link)
    }
}

/// struct ifinfomsg: family, pad, type, index, flags, change mask (the
/// flags we set are also the ones we change).
fn ifinfomsg(index: u32, flags: LinkFlags) -> Body {
    Body::emitted(&LinkHeader {
        index,
        flags,
        change_mask: flags,
        ..LinkHeader::default()
    })
}

/// Names a link by index alone: the body of a GET and of a DELETE.
pub fn index_request(index: u32) -> Body {
    ifinfomsg(index, LinkFlags::empty())
}

/// Every link: the body of a dump.
pub fn dump_request() -> Body {
    ifinfomsg(0, LinkFlags::empty())
}

pub fn get_by_name_request(name: &str) -> Body {
    let mut message = ifinfomsg(0, LinkFlags::empty());
    message.string(IFLA_IFNAME, name);
    message
}

/// The ends of a veth pair: the host end (up, in interface group `group`)
/// in this namespace, the pod end in the namespace `netns` names (borrowed:
/// it must stay open until the request is sent).
pub struct VethPair<'a> {
    pub host: &'a str,
    pub group: u32,
    pub peer: &'a str,
    pub netns: BorrowedFd<'a>,
    pub mtu: u32,
}

/// The veth pair in one request. Kernel gotchas (6.18): IFF_UP on a peer
/// created in another namespace fails with ENOTCONN, and IFLA_IFALIAS is
/// ignored at creation; both need a request of their own.
pub fn veth_request(pair: &VethPair) -> Body {
    let (host, peer, mtu) = (pair.host, pair.peer, pair.mtu);
    let mut peer_message = ifinfomsg(0, LinkFlags::empty());
    peer_message
        .string(IFLA_IFNAME, peer)
        .u32(IFLA_MTU, mtu)
        .u32(IFLA_NET_NS_FD, pair.netns.as_raw_fd() as u32);
    let mut info_data = Body::default();
    info_data.nest(VETH_INFO_PEER, &peer_message);
    let mut link_info = Body::default();
    link_info
        .string(IFLA_INFO_KIND, "veth")
        .nest(IFLA_INFO_DATA, &info_data);
    let mut message = ifinfomsg(0, LinkFlags::Up);
    message
        .string(IFLA_IFNAME, host)
        .u32(IFLA_MTU, mtu)
        .u32(IFLA_GROUP, pair.group)
        .nest(IFLA_LINKINFO, &link_info);
    message
}

pub fn set_alias_request(index: u32, alias: &str) -> Body {
    let mut message = ifinfomsg(index, LinkFlags::empty());
    message.string(IFLA_IFALIAS, alias);
    message
}

pub fn set_group_request(index: u32, group: u32) -> Body {
    let mut message = ifinfomsg(index, LinkFlags::empty());
    message.u32(IFLA_GROUP, group);
    message
}

pub fn set_up_request(index: u32) -> Body {
    ifinfomsg(index, LinkFlags::Up)
}

impl Netlink {
    /// The link with this name, or `None` when there is none.
    pub fn link_by_name(&mut self, name: &str) -> NlResult<Option<Link>> {
        self.link(&get_by_name_request(name))
    }

    /// The link with this index, or `None` when there is none.
    pub fn link_by_index(&mut self, index: u32) -> NlResult<Option<Link>> {
        self.link(&index_request(index))
    }

    fn link(&mut self, request: &Body) -> NlResult<Option<Link>> {
        match self.get(RTM_GETLINK, request) {
            Ok(body) => Link::parse(&body).map(Some).ok_or_else(NlError::protocol),
            Err(error) if error.errno == libc::ENODEV => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub fn create_veth(&mut self, pair: &VethPair) -> NlResult<()> {
        self.change(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &veth_request(pair))
    }

    pub fn set_group(&mut self, index: u32, group: u32) -> NlResult<()> {
        self.change(RTM_NEWLINK, 0, &set_group_request(index, group))
    }

    pub fn set_alias(&mut self, index: u32, alias: &str) -> NlResult<()> {
        self.change(RTM_NEWLINK, 0, &set_alias_request(index, alias))
    }

    pub fn set_up(&mut self, index: u32) -> NlResult<()> {
        self.change(RTM_NEWLINK, 0, &set_up_request(index))
    }

    pub fn delete_link(&mut self, index: u32) -> NlResult<()> {
        self.change(RTM_DELLINK, 0, &index_request(index))
    }

    pub fn links(&mut self) -> NlResult<Vec<Link>> {
        let mut links = Vec::new();
        for object in self.dump(RTM_GETLINK, &dump_request())? {
            if object.kind == RTM_NEWLINK {
                links.push(Link::parse(&object.body).ok_or_else(NlError::protocol)?);
            }
        }
        Ok(links)
    }
}
