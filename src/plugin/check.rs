//! CHECK: what prevResult says this plugin made is still there, on both
//! sides, and the Mycelium interface still owns the pod's /64.

use super::egress::{self, EgressState};
use super::fastpath;
use super::filter::{self, FilterState};
use super::ingress::{self, IngressState};
use super::naming::{GATEWAY, prefix_text};
use super::nft_table::{self, Snapshot};
use super::pod::Pod;
use super::{
    attachment_id, host_veth, node, open_host, pod_interface_name, pod_routes as pod_routes_of,
};
use crate::cni::config::{NetConf, OverlayIngress};
use crate::cni::env::Env;
use crate::cni::error::{CHECK_FAILED, CniError, CniResult, INVALID_CONFIG, TRY_AGAIN_LATER, Wrap};
use crate::cni::result::PrevResult;
use crate::log;
use crate::netlink::Netlink;
use crate::netlink::route::Route;
use ipnetwork::{IpNetwork, Ipv6Network};
use netlink_packet_route::AddressFamily;
use std::net::{IpAddr, Ipv6Addr};

fn failed(msg: String) -> CniError {
    CniError::new(CHECK_FAILED, msg)
}

pub fn check(env: &Env, conf: &NetConf) -> CniResult<()> {
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::new(INVALID_CONFIG, "invalid config: CHECK needs prevResult"))?;
    let prev = PrevResult::parse(prev)?;
    let pod_ifname = pod_interface_name(env, conf);
    let pod_index = prev.pod_interface(pod_ifname, &env.netns).ok_or_else(|| {
        failed(format!(
            "prevResult lists no interface {} in {}",
            pod_ifname, env.netns
        ))
    })?;
    let addresses = pod_addresses(&prev, pod_index)?;

    let mut host = open_host()?;
    let node = node::inspect(&mut host, &conf.mycelium_interface)?;
    if let Some(outside) = addresses.iter().find(|a| !node.owns(**a)) {
        let msg = format!(
            "pod address {outside} is not in the /64 of {}: it is in {}, and the node now holds {} ({}): its Mycelium key changed; recreate the pod",
            conf.mycelium_interface,
            prefix_text(*outside),
            prefix_text(node.address),
            node.address
        );
        return Err(failed(msg));
    }
    if conf.source_filter {
        let state = filter::state(&mut nft_table::open()?)?;
        if !matches!(state, FilterState::InForce { .. }) {
            let msg = format!("source filter: {state}; the next ADD restores it");
            return Err(CniError::new(TRY_AGAIN_LATER, msg));
        }
    }
    check_group(conf)?;
    check_overlay_ingress(conf)?;
    check_egress_chain(conf)?;
    let id = attachment_id(env, conf);
    let host_veth = host_veth::find(&mut host, &id)?
        .ok_or_else(|| failed(format!("no host veth for {}", id.alias())))?;
    if !host_veth.is_up() {
        return Err(failed(format!("host veth {} is down", host_veth.name)));
    }
    let group = ingress::group(&conf.name);
    if conf.overlay_ingress != OverlayIngress::Open && host_veth.group != group {
        let msg = format!(
            "host veth {} is not in interface group {group:#x} of overlayIngress; the next ADD or GC sets it",
            host_veth.name
        );
        return Err(CniError::new(TRY_AGAIN_LATER, msg));
    }
    let host_routes = host
        .routes(AddressFamily::Inet6, host_veth.index)
        .wrap("list host routes")?;
    for address in &addresses {
        let claim = IpNetwork::from(IpAddr::V6(*address));
        if !host_routes.iter().any(|r| is_route(r, claim, None)) {
            return Err(failed(format!(
                "no route {address}/128 dev {} on host",
                host_veth.name
            )));
        }
    }
    if conf.source_filter {
        check_fast_path(&mut host, host_veth.index, &host_routes)?;
    }

    let mut pod = Pod::open(&env.netns)?;
    let link = pod
        .nl
        .link_by_name(pod_ifname)
        .wrap("look up interface in pod")?
        .ok_or_else(|| failed(format!("no interface {} in {}", pod_ifname, env.netns)))?;
    if !link.is_up() {
        return Err(failed(format!("interface {} in pod is down", pod_ifname)));
    }
    let present = pod
        .nl
        .addresses(AddressFamily::Inet6, link.index)
        .wrap("list pod addresses")?;
    for address in &addresses {
        if !present.iter().any(|p| p.address == IpAddr::V6(*address)) {
            return Err(failed(format!(
                "address {address} missing on {} in pod",
                pod_ifname
            )));
        }
    }
    let pod_routes = pod
        .nl
        .routes(AddressFamily::Inet6, link.index)
        .wrap("list pod routes")?;
    for wanted in pod_routes_of(conf) {
        let gateway = Some(IpAddr::V6(GATEWAY));
        let present = |r: &Route| is_route(r, wanted.into(), gateway);
        if !pod_routes.iter().any(present) {
            let msg = format!("no route {wanted} via fe80::1 dev {pod_ifname} in pod");
            return Err(failed(msg));
        }
    }
    if let Some(pool) = conf.egress.pool() {
        let (host_index, pod_index) = (host_veth.index, link.index);
        egress::check_ipv4(&mut host, host_index, &mut pod.nl, pod_index, pool)?.map_err(failed)?;
    }
    Ok(())
}

/// No other network's chains name this network's interface group.
fn check_group(conf: &NetConf) -> CniResult<()> {
    let snapshot = nft_table::open().and_then(|mut nl| Snapshot::read(&mut nl));
    match snapshot {
        Ok(snapshot) => match ingress::colliding_network(&snapshot, &conf.name) {
            Some(other) => Err(ingress::collision(&conf.name, other)),
            None => Ok(()),
        },
        // What cannot be read, the other checks report.
        Err(_) => Ok(()),
    }
}

/// The configured control is in force, and no stricter one of an earlier
/// setting is left (with `open` and no nf_tables, there is nothing to ask).
fn check_overlay_ingress(conf: &NetConf) -> CniResult<()> {
    let open = conf.overlay_ingress == OverlayIngress::Open;
    let state = match nft_table::open().and_then(|mut nl| ingress::current_state(&mut nl, conf)) {
        Ok(state) => state,
        Err(_) if open => return Ok(()),
        Err(error) => return Err(ingress::unusable(error)),
    };
    if matches!(state, IngressState::Open | IngressState::InForce { .. }) {
        return Ok(());
    }
    let msg = format!(
        "overlayIngress {}: chain {} {state}; the next ADD or GC restores it",
        conf.overlay_ingress,
        ingress::chain_name(&conf.name)
    );
    Err(CniError::new(TRY_AGAIN_LATER, msg))
}

/// The route to `destination` (a default route included: the kernel dumps
/// it without RTA_DST, and `Route::parse` reads that as `::/0`).
/// With egress `nat`, the network's NAT chain is in force; with
/// `overlay`, no chain of an earlier setting is left.
fn check_egress_chain(conf: &NetConf) -> CniResult<()> {
    let state = match nft_table::open().and_then(|mut nl| egress::current_state(&mut nl, conf)) {
        Ok(state) => state,
        Err(_) if !conf.egress.is_nat() => return Ok(()),
        Err(error) => return Err(egress::unusable(error)),
    };
    if matches!(state, EgressState::Overlay | EgressState::InForce { .. }) {
        return Ok(());
    }
    let msg = format!(
        "egress {}: chain {} {state}; the next ADD or GC restores it",
        conf.egress,
        egress::chain_name(&conf.name)
    );
    Err(CniError::new(TRY_AGAIN_LATER, msg))
}

/// The fast path's elements on the pod's veth: one naming an address the
/// veth does not claim fails CHECK (it would let the pod send as that
/// address unchecked); a missing one is a warning (slow path).
fn check_fast_path(host: &mut Netlink, index: u32, ipv6_routes: &[Route]) -> CniResult<()> {
    let ipv4_routes = host
        .routes(AddressFamily::Inet, index)
        .wrap("list host IPv4 routes")?;
    let claimed: Vec<IpAddr> = ipv6_routes
        .iter()
        .chain(&ipv4_routes)
        .map(|route| route.destination)
        .filter(|d| d.prefix() == if d.is_ipv6() { 128 } else { 32 })
        .map(|d| d.ip())
        .collect();
    let entries = fastpath::entries(&mut nft_table::open()?)?;
    let (foreign, missing) = fastpath::pod_findings(&entries, index, &claimed);
    if let Some(first) = foreign.into_iter().next() {
        return Err(failed(first));
    }
    for warning in missing {
        log::line(&warning);
    }
    Ok(())
}

fn is_route(route: &Route, destination: IpNetwork, gateway: Option<IpAddr>) -> bool {
    route.destination == destination && route.gateway == gateway
}

/// The IPv6 addresses prevResult gives the pod interface.
fn pod_addresses(prev: &PrevResult, pod_index: usize) -> CniResult<Vec<Ipv6Addr>> {
    let mut addresses = Vec::new();
    for ip in prev.ips.iter().filter(|ip| ip.interface == Some(pod_index)) {
        let network: Ipv6Network = ip.address.parse().map_err(|_| {
            CniError::new(
                INVALID_CONFIG,
                format!("invalid prevResult: address {:?}", ip.address),
            )
        })?;
        addresses.push(network.ip());
    }
    if addresses.is_empty() {
        return Err(failed(
            "prevResult lists no IPv6 address for the pod interface".into(),
        ));
    }
    Ok(addresses)
}
