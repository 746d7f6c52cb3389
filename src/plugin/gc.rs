//! GC: remove every attachment of this network that the runtime no longer
//! lists in `cni.dev/valid-attachments` (or the older `cni.dev/attachments`),
//! then bring the network's overlay ingress control in line with its
//! setting (pods attached by an earlier version included), or remove its
//! chains when no pod of the network is left on the node. Only veths that
//! carry every mark of ours are deleted (`host_veth::attachment_of`).

use super::host_veth::{attachment_of, is_ours};
use super::naming::parse_alias;
use super::open_host;
use super::{fastpath, nft_table, rules};
use crate::cni::config::{NetConf, ValidAttachment};
use crate::cni::error::{CniResult, Wrap};
use crate::log;
use crate::netlink::Netlink;
use crate::netlink::link::Link;

pub fn gc(conf: &NetConf, valid: &[ValidAttachment]) -> CniResult<()> {
    let is_valid = |container_id: &str, ifname: &str| {
        valid
            .iter()
            .any(|a| a.container_id == container_id && a.ifname == ifname)
    };
    let mut host = open_host()?;
    // Before the links: an element an ADD adds meanwhile has its veth there.
    let fast_path = conf.source_filter.then(fastpath_entries).flatten();
    let links = host.links().wrap("list links")?;
    // Pods of the network that stay: valid attachments, and host veths of
    // ours that name the network without every mark (an earlier version's,
    // which the network's chains must still cover).
    let mut kept = 0;
    for link in &links {
        let Some((container_id, ifname)) = attachment_of(link, &conf.name) else {
            kept += usize::from(names_network(link, &conf.name));
            continue;
        };
        if is_valid(container_id, ifname) {
            kept += 1;
            continue;
        }
        match host.delete_link(link.index) {
            Ok(()) => log::line(&format!("GC: deleted {} of {}", link.name, link.alias)),
            Err(e) if e.errno == libc::ENODEV => {}
            other => other.wrap(format_args!("GC: delete host veth {}", link.name))?,
        }
    }
    if kept == 0 {
        rules::remove_network(conf)?;
    } else {
        rules::ensure(&mut host, conf)?;
    }
    // After `ensure`, which restores a deleted table with empty sets.
    if let Some((mut nl, entries)) = fast_path {
        fastpath::reconcile(&mut nl, &entries, &fastpath::Node::read(&mut host)?)?;
    }
    Ok(())
}

/// The fast path's elements (all networks share them), with the socket to
/// prune them by; None without nf_tables (GC still reaps veths then).
fn fastpath_entries() -> Option<(Netlink, Vec<fastpath::Entry>)> {
    let read = nft_table::open().and_then(|mut nl| Ok((fastpath::entries(&mut nl)?, nl)));
    match read {
        Ok((entries, nl)) => Some((nl, entries)),
        Err(error) => {
            log::line(&format!("GC: fast path not pruned: {}", error.msg));
            None
        }
    }
}

/// One of our host veths whose alias names `network`, marked or not.
fn names_network(link: &Link, network: &str) -> bool {
    is_ours(link) && parse_alias(&link.alias).is_some_and(|(of, _, _)| of == network)
}
