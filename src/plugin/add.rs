//! ADD: check the node, create the veth pair straight into the pod, claim
//! an address with the exclusive /128 host route, configure both ends.
//! Anything created is undone by deleting the host veth (the pod end and
//! the /128 route go with it). The source filter and the overlay ingress
//! control are made sure of before anything is created.

use super::host_veth::is_ours;
use super::naming::{AttachmentId, GATEWAY, MAX_ALIAS_LEN, NAME_ATTEMPTS};
use super::node;
use super::pod::Pod;
use super::requested::Candidates;
use super::{attachment_id, host, open_host, pod_interface_name, pod_routes};
use super::{filter, ingress};
use crate::cni::config::NetConf;
use crate::cni::env::Env;
use crate::cni::error::{CniError, CniResult, INTERFACE_EXISTS, INVALID_CONFIG, IO_FAILURE, Wrap};
use crate::cni::result::{self, Attachment, Interface};
use crate::log;
use crate::netlink::Netlink;
use crate::netlink::link::{Link, VethPair};
use ipnetwork::Ipv6Network;
use std::net::Ipv6Addr;

const LOOPBACK_INDEX: u32 = 1;
const HOST_LINK_LOCAL_PREFIX_LEN: u8 = 64;
const POD_PREFIX_LEN: u8 = 128;

/// What this ADD is to build, decided before anything is created.
struct Plan<'a> {
    id: AttachmentId<'a>,
    pod_ifname: &'a str,
    mtu: u32,
    /// Routes in the pod via fe80::1: 400::/7 first, then the configured ones.
    routes: Vec<Ipv6Network>,
    /// The requested address, or the derived candidates.
    candidates: Candidates,
}

pub fn add(env: &Env, conf: &NetConf) -> CniResult<String> {
    let id = attachment_id(env, conf);
    let alias = id.alias();
    if alias.len() > MAX_ALIAS_LEN {
        let msg = format!(
            "network name, container ID and ifname make an alias over {MAX_ALIAS_LEN} bytes"
        );
        return Err(CniError::new(INVALID_CONFIG, msg));
    }
    let mut host = open_host()?;
    let node = node::inspect(&mut host, &conf.mycelium_interface)?;
    let candidates = Candidates::for_attachment(env, conf, &node, &id)?;
    ensure_nf_tables(&mut host, conf)?;
    let plan = Plan {
        id,
        pod_ifname: pod_interface_name(env, conf),
        mtu: conf.mtu.unwrap_or(node.mtu),
        routes: pod_routes(conf),
        candidates,
    };
    let (pod_ifname, mtu) = (plan.pod_ifname, plan.mtu);
    let mut pod = Pod::open(&env.netns)?;
    let existing = pod
        .nl
        .link_by_name(pod_ifname)
        .wrap("look up interface in pod")?;
    if existing.is_some() {
        let msg = format!("interface {} already exists in {}", pod_ifname, env.netns);
        return Err(CniError::new(INTERFACE_EXISTS, msg));
    }
    let host_veth = create_veth(&mut host, &pod, &plan)?;
    match configure(&mut host, &mut pod, &plan, &host_veth) {
        Ok((address, pod_link)) => {
            let attachment = Attachment {
                host: Interface {
                    name: &host_veth.name,
                    mac: &host_veth.mac,
                    mtu,
                    sandbox: None,
                },
                pod: Interface {
                    name: &pod_link.name,
                    mac: &pod_link.mac,
                    mtu,
                    sandbox: Some(&env.netns),
                },
                address: format!("{address}/{POD_PREFIX_LEN}"),
                gateway: GATEWAY,
                routes: &plan.routes,
            };
            result::add_result(&conf.cni_version, conf.prev_result.as_ref(), &attachment)
        }
        Err(error) => {
            if let Err(undo) = host.delete_link(host_veth.index) {
                log::line(&format!("undo ADD: delete {}: {undo}", host_veth.name));
            }
            Err(error)
        }
    }
}

/// The source filter, then the network's overlay ingress control.
fn ensure_nf_tables(host: &mut Netlink, conf: &NetConf) -> CniResult<()> {
    if conf.source_filter {
        let mut nft = filter::open().map_err(filter::unusable)?;
        filter::ensure(&mut nft).map_err(filter::unusable)?;
        return ingress::ensure_configured(Ok(nft), host, conf);
    }
    ingress::ensure_configured(filter::open(), host, conf)
}

/// Creates the pair under the first free derived host name. A link with
/// our alias under that name is a leftover of an earlier, interrupted ADD
/// of this same attachment: it is replaced.
fn create_veth(host: &mut Netlink, pod: &Pod, plan: &Plan) -> CniResult<Link> {
    let (id, pod_ifname) = (&plan.id, plan.pod_ifname);
    let alias = id.alias();
    let mut attempt = 0;
    let mut replaced_leftover = false;
    while attempt < NAME_ATTEMPTS {
        let name = id.host_veth_name(attempt);
        let pair = VethPair {
            host: &name,
            group: ingress::group(id.network),
            peer: pod_ifname,
            netns_fd: pod.netns.fd(),
            mtu: plan.mtu,
        };
        match host.create_veth(&pair) {
            Ok(()) => return label_new_veth(host, &name, &alias),
            Err(e) if e.errno == libc::EEXIST => {}
            other => other.wrap(format_args!("create veth {name} with peer {pod_ifname}"))?,
        }
        let taken = host.link_by_name(&name).wrap("look up host veth")?;
        match taken {
            Some(link) if link.alias == alias && is_ours(&link) && !replaced_leftover => {
                log::line(&format!("replacing leftover host veth {name} of {alias}"));
                host.delete_link(link.index)
                    .wrap("delete leftover host veth")?;
                replaced_leftover = true;
            }
            _ => attempt += 1,
        }
    }
    Err(CniError::new(
        IO_FAILURE,
        format!("no free host veth name for {alias}"),
    ))
}

/// Looks up the new host veth and sets its alias: the record that lets DEL,
/// CHECK and GC find the attachment. On failure the veth is deleted again.
fn label_new_veth(host: &mut Netlink, name: &str, alias: &str) -> CniResult<Link> {
    let mut link = host
        .link_by_name(name)
        .wrap("look up new host veth")?
        .ok_or_else(|| {
            CniError::new(
                IO_FAILURE,
                format!("host veth {name} vanished after creation"),
            )
        })?;
    let labelled = host.set_alias(link.index, alias);
    if labelled.is_err() {
        let _ = host.delete_link(link.index);
    }
    labelled.wrap(format_args!("set alias of host veth {name}"))?;
    link.alias = alias.into();
    Ok(link)
}

fn configure(
    host: &mut Netlink,
    pod: &mut Pod,
    plan: &Plan,
    host_veth: &Link,
) -> CniResult<(Ipv6Addr, Link)> {
    let pod_ifname = plan.pod_ifname;
    host.add_address(host_veth.index, GATEWAY, HOST_LINK_LOCAL_PREFIX_LEN)
        .wrap("add fe80::1 to host veth")?;
    host::refuse_router_advertisements(&host_veth.name)?;
    let address = claim_address(host, &plan.candidates, host_veth.index)?;
    let pod_link = pod
        .nl
        .link_by_name(pod_ifname)
        .wrap("look up new interface in pod")?
        .ok_or_else(|| {
            CniError::new(
                IO_FAILURE,
                format!("interface {} missing in pod after creation", pod_ifname),
            )
        })?;
    pod.nl
        .set_up(pod_link.index)
        .wrap(format_args!("set {pod_ifname} up in pod"))?;
    pod.nl
        .add_address(pod_link.index, address, POD_PREFIX_LEN)
        .wrap(format_args!("add address {address}/128 in pod"))?;
    pod.nl.set_up(LOOPBACK_INDEX).wrap("set lo up in pod")?;
    for route in &plan.routes {
        pod.nl
            .add_route(
                route.network(),
                route.prefix(),
                Some(GATEWAY),
                pod_link.index,
            )
            .wrap(format_args!("add route {route} via fe80::1 in pod"))?;
    }
    host::ensure_forwarding()?;
    Ok((address, pod_link))
}

/// The /128 host route is the claim on an address: created with
/// NLM_F_EXCL, so of two concurrent ADDs only one gets it; EEXIST means
/// taken, try the next candidate (a requested address has no next one).
fn claim_address(
    host: &mut Netlink,
    candidates: &Candidates,
    host_index: u32,
) -> CniResult<Ipv6Addr> {
    for &candidate in &candidates.addresses {
        match host.add_route(candidate, POD_PREFIX_LEN, None, host_index) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.errno == libc::EEXIST => continue,
            other => other.wrap(format_args!("add route {candidate}/128 on host"))?,
        }
    }
    Err(candidates.exhausted())
}
