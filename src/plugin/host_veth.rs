//! Finding an attachment's host veth, and telling our veths from others.

use super::ingress;
use super::naming::{self, AttachmentId};
use crate::cni::env::{check_interface_name, matches_name_rule};
use crate::cni::error::{CniResult, Wrap};
use crate::netlink::Netlink;
use crate::netlink::link::Link;
use crate::netlink::route::NewRoute;
use std::net::IpAddr;

/// The host veth of an attachment, found by its derived name and, failing
/// that (a name collision moved it), by its alias among all links.
pub fn find(nl: &mut Netlink, id: &AttachmentId) -> CniResult<Option<Link>> {
    let alias = id.alias();
    let by_name = nl
        .link_by_name(&id.host_veth_name(0))
        .wrap("look up host veth")?;
    if let Some(link) = by_name.filter(|link| link.alias == alias && is_ours(link)) {
        return Ok(Some(link));
    }
    let links = nl.links().wrap("list links")?;
    Ok(links
        .into_iter()
        .find(|link| link.alias == alias && is_ours(link)))
}

/// Claims `address` for the pod behind host veth `index` with the
/// exclusive host route `address/128` (or `/32`): created with NLM_F_EXCL,
/// so of two concurrent ADDs only one gets it. False when it is taken
/// (EEXIST): the caller tries its next candidate.
pub fn claim(host: &mut Netlink, address: IpAddr, index: u32) -> CniResult<bool> {
    let route = NewRoute {
        destination: address.into(),
        gateway: None,
        oif: index,
    };
    match host.add_route(&route) {
        Ok(()) => Ok(true),
        Err(e) if e.errno == libc::EEXIST => Ok(false),
        Err(e) => Err(e).wrap(format_args!("add route {} on host", route.destination)),
    }
}

/// A veth whose name has our prefix: only such links are ever deleted.
pub fn is_ours(link: &Link) -> bool {
    link.is_veth() && link.name.starts_with(naming::HOST_VETH_PREFIX)
}

/// The (container ID, ifname) of the attachment of `network` whose host
/// veth `link` is, if it carries every mark ADD gives one: kind veth, a
/// name of our shape (`myc` + 12 lowercase hex digits), the alias
/// `network/containerID/ifname` with a valid container ID and ifname, and
/// the network's interface group. GC deletes only such links.
pub fn attachment_of<'a>(link: &'a Link, network: &str) -> Option<(&'a str, &'a str)> {
    let (of, container_id, ifname) = naming::parse_alias(&link.alias)?;
    let marked = link.is_veth()
        && naming::is_host_veth_name(&link.name)
        && of == network
        && matches_name_rule(container_id)
        && check_interface_name(ifname).is_ok()
        && link.group == ingress::group(network);
    marked.then_some((container_id, ifname))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_links_with_every_mark_are_attachments() {
        let ours = || Link {
            name: "mycf49aa2b9efed".into(),
            kind: "veth".into(),
            alias: "net1/c1/eth0".into(),
            group: ingress::group("net1"),
            ..Link::default()
        };
        assert_eq!(attachment_of(&ours(), "net1"), Some(("c1", "eth0")));
        assert_eq!(attachment_of(&ours(), "net2"), None, "another network");
        type Unmark = fn(&mut Link);
        let unmarked: [(&str, Unmark); 7] = [
            ("kind dummy", |l| l.kind = "dummy".into()),
            ("short name", |l| l.name = "mycfoo".into()),
            ("upper-case hex", |l| l.name = "mycF49AA2B9EFED".into()),
            ("group 0", |l| l.group = 0),
            ("another group", |l| l.group = ingress::group("net2")),
            ("bad container ID", |l| l.alias = "net1/-c1/eth0".into()),
            ("bad ifname", |l| l.alias = "net1/c1/a b".into()),
        ];
        for (what, change) in unmarked {
            let mut link = ours();
            change(&mut link);
            assert_eq!(attachment_of(&link, "net1"), None, "{what}");
        }
    }
}
