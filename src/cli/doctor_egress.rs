//! doctor's egress findings: for every network of ours, its `egress`
//! setting and whether the kernel holds it; with `nat`, whether the node
//! has somewhere to send each family (a default route), and whether the
//! IPv4 pool overlaps a route of the node.

use super::report::Report;
use crate::cni::config::NetConf;
use crate::netlink::Netlink;
use crate::netlink::route::Route;
use crate::plugin::egress::{self, EgressState};
use crate::plugin::naming::HOST_VETH_PREFIX;
use crate::plugin::nft_table;
use ipnetwork::{IpNetwork, Ipv4Network};
use netlink_packet_route::AddressFamily;

pub(super) fn check(report: &mut Report, networks: &[&NetConf]) {
    let mut routes = Netlink::open().ok().map(|mut nl| {
        let v4 = nl
            .main_routes(AddressFamily::Inet, None)
            .unwrap_or_default();
        let v6 = nl
            .main_routes(AddressFamily::Inet6, None)
            .unwrap_or_default();
        let links = nl.links().unwrap_or_default();
        (v4, v6, links)
    });
    for conf in networks {
        check_chain(report, conf);
        if let (Some(pool), Some((v4, v6, links))) = (conf.egress.pool(), routes.as_mut()) {
            let ours = |route: &Route| {
                links
                    .iter()
                    .any(|l| l.index == route.oif && l.name.starts_with(HOST_VETH_PREFIX))
            };
            check_default_routes(report, conf, v4, v6);
            check_pool(report, conf, pool, v4.iter().filter(|r| !ours(r)));
        }
    }
}

fn check_chain(report: &mut Report, conf: &NetConf) {
    let label = format!("network {}: egress {}", conf.name, conf.egress);
    let state = nft_table::open().and_then(|mut nl| egress::current_state(&mut nl, conf));
    match state {
        Ok(state @ (EgressState::Overlay | EgressState::InForce { .. })) => {
            report.ok(&format!("{label}: {state}"))
        }
        Ok(state @ EgressState::Missing) => report.warn(&format!("{label}: {state}"), state.fix()),
        Ok(state) => report.fail(&format!("{label}: {state}"), state.fix()),
        Err(_) if !conf.egress.is_nat() => report.ok(&format!("{label}: nothing NATed")),
        Err(error) => report.fail(
            &format!("{label}: {}", error.msg),
            "enable nf_tables with NAT (masquerade), or set \"egress\": \"overlay\"",
        ),
    }
}

fn is_default(route: &Route) -> bool {
    route.destination.prefix() == 0
}

fn check_default_routes(report: &mut Report, conf: &NetConf, v4: &[Route], v6: &[Route]) {
    for (family, routes) in [("IPv4", v4), ("IPv6", v6)] {
        if routes.iter().any(is_default) {
            continue;
        }
        report.warn(
            &format!(
                "network {}: egress nat, but the node has no {family} default route: pods reach no {family} address outside the node",
                conf.name
            ),
            "give the node a default route for that family, or ignore this if it has no uplink of that family",
        );
    }
}

/// An IPv4 route of the node (other than a pod's own) that overlaps the
/// pool: its addresses would be shadowed for the pods, or theirs for it.
fn check_pool<'a>(
    report: &mut Report,
    conf: &NetConf,
    pool: Ipv4Network,
    routes: impl Iterator<Item = &'a Route>,
) {
    let pool_net = IpNetwork::V4(pool);
    for route in routes.filter(|r| !is_default(r)) {
        let overlaps = route.destination.contains(pool_net.network())
            || pool_net.contains(route.destination.network());
        if overlaps {
            report.warn(
                &format!(
                    "network {}: ipv4Pool {pool} overlaps the node's route {}",
                    conf.name, route.destination
                ),
                "set \"ipv4Pool\" to a range the node does not use (mycelium-cni install --ipv4-pool CIDR)",
            );
            return;
        }
    }
}
