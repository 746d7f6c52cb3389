//! Links: look up, create the veth pair, set alias/up, delete, dump.

use super::reply::{self, Attrs};
use super::{Netlink, NlError, NlResult};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};

pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;

const IFINFO_LEN: usize = 16;
const IFLA_ADDRESS: u16 = 1;
const IFLA_LINK: u16 = 5;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINKINFO: u16 = 18;
const IFLA_IFALIAS: u16 = 20;
const IFLA_INFO_KIND: u16 = 1;
const IFF_UP: u32 = 1;

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
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    pub fn is_veth(&self) -> bool {
        self.kind == "veth"
    }

    pub fn parse(body: &[u8]) -> Option<Link> {
        let mut link = Link {
            index: reply::u32_at(body, 4)?,
            flags: reply::u32_at(body, 8)?,
            ..Link::default()
        };
        for (kind, value) in Attrs::new(body.get(IFINFO_LEN..)?) {
            match kind {
                IFLA_IFNAME => link.name = reply::c_string(value),
                IFLA_MTU => link.mtu = reply::u32_at(value, 0)?,
                IFLA_ADDRESS => link.mac = value.to_vec(),
                IFLA_IFALIAS => link.alias = reply::c_string(value),
                IFLA_LINK => link.peer_index = reply::u32_at(value, 0)?,
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

fn up_flags() -> LinkFlags {
    LinkFlags::Up
}

/// Names a link by index alone: the body of a GET and of a DELETE.
pub fn index_request(index: u32) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message
}

pub fn get_by_name_request(name: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.attributes.push(LinkAttribute::IfName(name.into()));
    message
}

/// The veth pair in one request: the host end up in this namespace, the peer
/// inside the namespace given by `peer_netns_fd`. Kernel gotchas (6.18):
/// IFF_UP on a peer created in another namespace fails with ENOTCONN, and
/// IFLA_IFALIAS is ignored at creation; both need a request of their own.
pub fn veth_request(host: &str, peer: &str, mtu: u32, peer_netns_fd: i32) -> LinkMessage {
    let mut peer_message = LinkMessage::default();
    peer_message.attributes = vec![
        LinkAttribute::IfName(peer.into()),
        LinkAttribute::Mtu(mtu),
        LinkAttribute::NetNsFd(peer_netns_fd),
    ];
    let mut message = LinkMessage::default();
    message.header.flags = up_flags();
    message.header.change_mask = up_flags();
    message.attributes = vec![
        LinkAttribute::IfName(host.into()),
        LinkAttribute::Mtu(mtu),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
        ]),
    ];
    message
}

pub fn set_alias_request(index: u32, alias: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message
        .attributes
        .push(LinkAttribute::IfAlias(alias.into()));
    message
}

pub fn set_up_request(index: u32) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.header.flags = up_flags();
    message.header.change_mask = up_flags();
    message
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

    fn link(&mut self, request: &LinkMessage) -> NlResult<Option<Link>> {
        match self.get(RTM_GETLINK, request) {
            Ok(body) => Link::parse(&body).map(Some).ok_or_else(NlError::protocol),
            Err(error) if error.errno == libc::ENODEV => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        mtu: u32,
        peer_netns_fd: i32,
    ) -> NlResult<()> {
        let request = veth_request(host, peer, mtu, peer_netns_fd);
        self.change(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &request)
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
        self.dump(RTM_GETLINK, &LinkMessage::default(), &mut |message| {
            if message.kind == RTM_NEWLINK {
                links.push(Link::parse(message.body).ok_or_else(NlError::protocol)?);
            }
            Ok(())
        })?;
        Ok(links)
    }
}
