//! Egress (`"egress": "nat"`, the default): pods reach the world their node
//! reaches.
//!
//! - IPv4: the host veth holds 169.254.1.1/32 (the pods' gateway, as
//!   fe80::1 is for IPv6); the pod gets a /32 from `ipv4Pool`, claimed like
//!   its IPv6 address by an exclusive host route `/32 dev <host veth>`, and
//!   routes `169.254.1.1 dev eth0 scope link`, `default via 169.254.1.1`.
//!   Everything sits on the host veth and goes with it at DEL.
//! - IPv6: the pod routes `::/0` via fe80::1 (see `pod_routes`).
//! - NAT: one chain per network in the plugin's table:
//!
//! ```text
//! chain egress-NET {
//!   type nat hook postrouting priority srcnat; policy accept;
//!   meta iifgroup G ip6 daddr 400::/7 accept
//!   meta iifgroup G oifname != "myc*" oifname != "mycelium" counter masquerade
//! }
//! ```
//! It names the network's pods by the interface group of their host
//! veths (nothing per pod). Traffic into the overlay is never NATed, by its
//! destination (400::/7) whatever interface it leaves by, and by the
//! Mycelium interface; nor is traffic to another pod's veth: a remote node
//! and a neighbour pod must see the pod's own address. Both families are
//! masqueraded by the one rule.

use super::naming::{AttachmentId, HOST_VETH_PREFIX};
use super::nft_table::{self, ChainSpec, ChainState, Rule, Snapshot};
use super::{host, host_veth};
use crate::cni::config::NetConf;
use crate::cni::egress::IPV4_GATEWAY;
use crate::cni::error::{CniError, CniResult, IO_FAILURE, NO_FREE_ADDRESS, Wrap};
use crate::netlink::Netlink;
use crate::netlink::nftables::{self as nft, Expr};
use crate::netlink::route::NewRoute;
use ipnetwork::{IpNetwork, Ipv4Network};
use netlink_packet_route::AddressFamily;
use std::net::{IpAddr, Ipv4Addr};

pub const CHAIN_PREFIX: &str = "egress-";
const ADDRESS_ATTEMPTS: u32 = 64;
const IFNAMSIZ: usize = 16;
/// The IPv6 header's destination address: at offset 24.
const IPV6_DADDR_OFFSET: u32 = 24;
const RULE_MASQUERADE: &str = "masquerade";
const IPV4_DEFAULT: Ipv4Network = match Ipv4Network::new_checked(Ipv4Addr::UNSPECIFIED, 0) {
    Some(network) => network,
    None => panic!("0.0.0.0/0"),
};

pub fn chain_name(network: &str) -> String {
    format!("{CHAIN_PREFIX}{network}")
}

fn interface_name(name: &str) -> Vec<u8> {
    let mut bytes = name.as_bytes().to_vec();
    bytes.resize(IFNAMSIZ, 0);
    bytes
}

/// The network's NAT chain; None for `overlay`.
pub fn chain(conf: &NetConf) -> Option<ChainSpec> {
    if !conf.egress.is_nat() {
        return None;
    }
    let group = super::ingress::group(&conf.name);
    let from_pods = [
        nft::meta_load(nft::NFT_META_IIFGROUP),
        nft::cmp(nft::NFT_CMP_EQ, &group.to_ne_bytes()),
    ];
    let mut overlay = from_pods.to_vec();
    overlay.extend([
        nft::meta_load(nft::NFT_META_NFPROTO),
        nft::cmp(nft::NFT_CMP_EQ, &[nft::NFPROTO_IPV6]),
        // ip6 daddr 400::/7: the first byte, masked to its top 7 bits.
        nft::payload_load(nft::NFT_PAYLOAD_NETWORK_HEADER, IPV6_DADDR_OFFSET, 1),
        nft::bitwise_and(&[0xfe]),
        nft::cmp(nft::NFT_CMP_EQ, &[0x04]),
        nft::verdict(nft::NF_ACCEPT),
    ]);
    let mut exprs: Vec<Expr> = from_pods.to_vec();
    exprs.extend([
        nft::meta_load(nft::NFT_META_OIFNAME),
        nft::cmp(nft::NFT_CMP_NEQ, HOST_VETH_PREFIX.as_bytes()),
        nft::meta_load(nft::NFT_META_OIFNAME),
        nft::cmp(nft::NFT_CMP_NEQ, &interface_name(&conf.mycelium_interface)),
        nft::counter(),
        nft::masquerade(),
    ]);
    Some(ChainSpec {
        name: chain_name(&conf.name),
        kind: "nat",
        hook: nft::NF_INET_POST_ROUTING,
        priority: nft::NF_IP_PRI_NAT_SRC,
        policy: nft::NF_ACCEPT,
        sets: Vec::new(),
        rules: vec![
            Rule {
                label: "overlay",
                exprs: overlay,
            },
            Rule {
                label: RULE_MASQUERADE,
                exprs,
            },
        ],
    })
}

/// What the kernel holds of one network's egress.
#[derive(Debug, PartialEq, Eq)]
pub enum EgressState {
    /// `overlay`, and no NAT chain.
    Overlay,
    InForce {
        masqueraded: u64,
    },
    Missing,
    Altered(&'static str),
    /// `overlay` is configured, but the chain of `nat` is still there.
    Stale,
}

impl EgressState {
    /// What an operator does about it ("" when nothing is to be done).
    pub fn fix(&self) -> &'static str {
        match self {
            EgressState::Overlay | EgressState::InForce { .. } => "",
            EgressState::Missing => {
                "none needed before the first pod: the next ADD or GC creates it"
            }
            EgressState::Altered(_) | EgressState::Stale => {
                "the next ADD or GC replaces it; do not edit the table by hand"
            }
        }
    }
}

impl std::fmt::Display for EgressState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EgressState::Overlay => f.write_str("overlay only, nothing NATed"),
            EgressState::InForce { masqueraded } => {
                write!(f, "NAT in force, {masqueraded} connections masqueraded")
            }
            EgressState::Missing => f.write_str("its NAT chain is missing"),
            EgressState::Altered(what) => write!(f, "its NAT chain was altered: {what}"),
            EgressState::Stale => f.write_str("a NAT chain of an earlier setting is still there"),
        }
    }
}

pub fn state(snapshot: &Snapshot, conf: &NetConf) -> EgressState {
    let Some(spec) = chain(conf) else {
        return match snapshot.has_chain(&chain_name(&conf.name)) {
            true => EgressState::Stale,
            false => EgressState::Overlay,
        };
    };
    match snapshot.state(&spec) {
        ChainState::InForce(counters) => EgressState::InForce {
            masqueraded: counters.of(RULE_MASQUERADE),
        },
        ChainState::Missing => EgressState::Missing,
        ChainState::Altered(what) => EgressState::Altered(what),
    }
}

/// `state` on a fresh snapshot (CHECK, doctor).
pub fn current_state(nl: &mut Netlink, conf: &NetConf) -> CniResult<EgressState> {
    Ok(state(&Snapshot::read(nl)?, conf))
}

/// ADD's and GC's part of the table's batch.
pub fn changes(snapshot: &Snapshot, conf: &NetConf) -> Vec<nft::Change> {
    match (state(snapshot, conf), chain(conf)) {
        (EgressState::Stale, _) => nft_table::remove_changes(&chain_name(&conf.name)),
        (EgressState::Missing | EgressState::Altered(_), Some(spec)) => {
            nft_table::replace_changes(&spec)
        }
        _ => Vec::new(),
    }
}

/// NAT is configured but nf_tables cannot carry it.
pub fn unusable(error: CniError) -> CniError {
    CniError::new(
        IO_FAILURE,
        format!(
            "egress nat: {}; it needs nf_tables with NAT (masquerade): enable that, or set \"egress\": \"overlay\"",
            error.msg
        ),
    )
}

/// The pod's IPv4 side, after its IPv6 one: the gateway on the host veth,
/// the claimed address in the pod, its two routes, and forwarding.
pub fn configure_ipv4(
    host: &mut Netlink,
    pod: &mut Netlink,
    id: &AttachmentId,
    pool: Ipv4Network,
    host_index: u32,
    pod_index: u32,
) -> CniResult<Ipv4Addr> {
    let gateway = IpAddr::V4(IPV4_GATEWAY);
    host.add_address(host_index, IpNetwork::from(gateway))
        .wrap("add 169.254.1.1 to host veth")?;
    let address = claim_ipv4(host, id, pool, host_index)?;
    pod.add_address(pod_index, IpNetwork::from(IpAddr::V4(address)))
        .wrap(format_args!("add address {address}/32 in pod"))?;
    let on_link = NewRoute {
        destination: IpNetwork::from(gateway),
        gateway: None,
        oif: pod_index,
    };
    pod.add_route(&on_link)
        .wrap("add route 169.254.1.1 dev in pod")?;
    let default = NewRoute {
        destination: IpNetwork::V4(IPV4_DEFAULT),
        gateway: Some(gateway),
        oif: pod_index,
    };
    pod.add_route(&default)
        .wrap("add route 0.0.0.0/0 via 169.254.1.1 in pod")?;
    host::ensure_ipv4_forwarding()?;
    Ok(address)
}

/// The /32 host route is the claim, as the /128 is for IPv6.
fn claim_ipv4(
    host: &mut Netlink,
    id: &AttachmentId,
    pool: Ipv4Network,
    host_index: u32,
) -> CniResult<Ipv4Addr> {
    for attempt in 0..ADDRESS_ATTEMPTS {
        let candidate = id.pod_ipv4(pool, attempt);
        if host_veth::claim(host, IpAddr::V4(candidate), host_index)? {
            return Ok(candidate);
        }
    }
    let msg = format!("no free IPv4 address in ipv4Pool {pool} after {ADDRESS_ATTEMPTS} attempts");
    Err(CniError::new(NO_FREE_ADDRESS, msg))
}

/// CHECK's part for the pod's IPv4 side: it holds an address of the pool,
/// the host routes that address to the pod's host veth, and the pod routes
/// the default via 169.254.1.1. The message says what is missing.
pub fn check_ipv4(
    host: &mut Netlink,
    host_index: u32,
    pod: &mut Netlink,
    pod_index: u32,
    pool: Ipv4Network,
) -> CniResult<Result<(), String>> {
    let addresses = pod
        .addresses(AddressFamily::Inet, pod_index)
        .wrap("list pod IPv4 addresses")?;
    let Some(address) = addresses.iter().find_map(|a| match a.address {
        IpAddr::V4(v4) if pool.contains(v4) => Some(v4),
        _ => None,
    }) else {
        return Ok(Err(format!(
            "the pod has no IPv4 address in ipv4Pool {pool}"
        )));
    };
    let host_routes = host
        .routes(AddressFamily::Inet, host_index)
        .wrap("list host IPv4 routes")?;
    let claim = IpNetwork::from(IpAddr::V4(address));
    if !host_routes.iter().any(|r| r.destination == claim) {
        return Ok(Err(format!(
            "no route {address}/32 to the pod's host veth on host"
        )));
    }
    let pod_routes = pod
        .routes(AddressFamily::Inet, pod_index)
        .wrap("list pod IPv4 routes")?;
    let gateway = Some(IpAddr::V4(IPV4_GATEWAY));
    let default = IpNetwork::V4(IPV4_DEFAULT);
    if !pod_routes
        .iter()
        .any(|r| r.destination == default && r.gateway == gateway)
    {
        return Ok(Err("no route 0.0.0.0/0 via 169.254.1.1 in pod".into()));
    }
    Ok(Ok(()))
}
