//! ADD: check the node, create the veth pair straight into the pod, claim
//! an address with the exclusive /128 host route, configure both ends.
//! Anything created is undone by deleting the host veth (the pod end and
//! the /128 route go with it). The source filter and the overlay ingress
//! control are made sure of before anything is created.

use super::host_veth::{self, is_ours};
use super::naming::{AttachmentId, GATEWAY, MAX_ALIAS_LEN, NAME_ATTEMPTS};
use super::node;
use super::pod::Pod;
use super::requested::Candidates;
use super::{attachment_id, host, open_host, pod_interface_name, pod_routes};
use super::{egress, fastpath, ingress, rules};
use crate::cni::config::NetConf;
use crate::cni::env::Env;
use crate::cni::error::{CniError, CniResult, INTERFACE_EXISTS, INVALID_CONFIG, IO_FAILURE, Wrap};
use crate::cni::result::{self, Attachment, Interface};
use crate::log;
use crate::netlink::Netlink;
use crate::netlink::link::{Link, VethPair};
use crate::netlink::route::NewRoute;
use ipnetwork::{Ipv4Network, Ipv6Network};
use std::net::{IpAddr, Ipv6Addr};

const LOOPBACK_INDEX: u32 = 1;
const POD_PREFIX_LEN: u8 = 128;
/// fe80::1/64 on the host veth: the pods' gateway.
const HOST_GATEWAY: Ipv6Network = match Ipv6Network::new_checked(GATEWAY, 64) {
    Some(network) => network,
    None => panic!("fe80::1/64"),
};

/// What this ADD is to build, decided before anything is created.
struct Plan<'a> {
    id: AttachmentId<'a>,
    pod_ifname: &'a str,
    mtu: u32,
    /// Routes in the pod via fe80::1: 400::/7 first, then the configured ones.
    routes: Vec<Ipv6Network>,
    /// The requested address, or the derived candidates.
    candidates: Candidates,
    /// With egress `nat`: the pool of the pod's IPv4 address.
    ipv4_pool: Option<Ipv4Network>,
    /// With the source filter: the pod's addresses go into its fast path.
    fast_path: bool,
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
    let mut nft = rules::ensure(&mut host, conf)?;
    let plan = Plan {
        id,
        pod_ifname: pod_interface_name(env, conf),
        mtu: conf.mtu.unwrap_or(node.mtu),
        routes: pod_routes(conf),
        candidates,
        ipv4_pool: conf.egress.pool(),
        fast_path: conf.source_filter,
    };
    let pod_ifname = plan.pod_ifname;
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
    let made = configure(&mut host, &mut pod, &plan, &host_veth, nft.as_mut()).and_then(
        |(address, pod_link)| result_of(env, conf, &plan, &host_veth, address, &pod_link),
    );
    if made.is_err() {
        // Undoes all of this ADD: the pod end, its address and routes, and
        // the /128 claim go with the host veth.
        if let Err(undo) = host.delete_link(host_veth.index) {
            log::line(&format!("undo ADD: delete {}: {undo}", host_veth.name));
        }
    }
    made
}

/// The result document: the chained prevResult with what this ADD made.
fn result_of(
    env: &Env,
    conf: &NetConf,
    plan: &Plan,
    host_veth: &Link,
    address: Ipv6Addr,
    pod_link: &Link,
) -> CniResult<String> {
    let attachment = Attachment {
        host: Interface {
            name: &host_veth.name,
            mac: &host_veth.mac,
            mtu: plan.mtu,
            sandbox: None,
        },
        pod: Interface {
            name: &pod_link.name,
            mac: &pod_link.mac,
            mtu: plan.mtu,
            sandbox: Some(&env.netns),
        },
        address: format!("{address}/{POD_PREFIX_LEN}"),
        gateway: GATEWAY,
        routes: &plan.routes,
    };
    result::add_result(&conf.cni_version, conf.prev_result.as_ref(), &attachment)
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
            netns: pod.netns.fd(),
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
    nft: Option<&mut Netlink>,
) -> CniResult<(Ipv6Addr, Link)> {
    let pod_ifname = plan.pod_ifname;
    host.add_address(host_veth.index, HOST_GATEWAY.into())
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
        .add_address(pod_link.index, IpAddr::V6(address).into())
        .wrap(format_args!("add address {address}/128 in pod"))?;
    pod.nl.set_up(LOOPBACK_INDEX).wrap("set lo up in pod")?;
    for route in &plan.routes {
        pod.nl
            .add_route(&NewRoute {
                destination: (*route).into(),
                gateway: Some(IpAddr::V6(GATEWAY)),
                oif: pod_link.index,
            })
            .wrap(format_args!("add route {route} via fe80::1 in pod"))?;
    }
    host::ensure_forwarding()?;
    let mut claimed = vec![IpAddr::V6(address)];
    if let Some(pool) = plan.ipv4_pool {
        let (host_index, pod_index) = (host_veth.index, pod_link.index);
        let ipv4 =
            egress::configure_ipv4(host, &mut pod.nl, &plan.id, pool, host_index, pod_index)?;
        claimed.push(IpAddr::V4(ipv4));
    }
    if plan.fast_path {
        fastpath::add(nft, host_veth.index, &claimed);
    }
    Ok((address, pod_link))
}

/// The first candidate whose /128 claim succeeds (a requested address has
/// no next one).
fn claim_address(
    host: &mut Netlink,
    candidates: &Candidates,
    host_index: u32,
) -> CniResult<Ipv6Addr> {
    for &candidate in &candidates.addresses {
        if host_veth::claim(host, IpAddr::V6(candidate), host_index)? {
            return Ok(candidate);
        }
    }
    Err(candidates.exhausted())
}
