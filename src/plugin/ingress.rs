//! Overlay ingress (`overlayIngress`): what may reach a network's pods from
//! the Mycelium interface. One base chain per network in the source
//! filter's table, on the forward hook. It names the network's pods by the
//! interface group ADD gives their host veths, so nothing per pod lives in
//! nf_tables and DEL has nothing to undo:
//!
//! ```text
//! chain overlay-in-NET {
//!   type filter hook forward priority filter; policy accept;
//!   iifname "mycelium" oifgroup G ct state established,related accept
//!   iifname "mycelium" oifgroup G ct status dnat accept
//!   iifname "mycelium" oifgroup G ip6 saddr @allow-NET accept  # listed prefixes
//!   iifname "mycelium" oifgroup G counter drop
//! }
//! set allow-NET { type ipv6_addr; flags interval; elements = { PREFIX, ... } }
//! ```
//! The listed prefixes live in one interval set matched by one rule, so a
//! list of 10,000 prefixes is one rule and a few set-element messages, and
//! a change of the list replaces the set's content in the same batch.
//! `open` has no chain. Traffic from the node itself (output path), between
//! pods of the node (iif a veth) and what the node DNATs to a pod (a
//! Service the user exposed) is never dropped here.

use super::host_veth::is_ours;
use super::naming::parse_alias;
use super::nft_table::{self, ChainSpec, ChainState, FAMILY, Rule, Snapshot, TABLE};
use crate::cni::config::{NetConf, OverlayIngress};
use crate::cni::error::{CniError, CniResult, INVALID_CONFIG, IO_FAILURE, Wrap};
use crate::netlink::Netlink;
use crate::netlink::nft_set::{
    self, Element, NFT_SET_ELEM_INTERVAL_END, NFT_SET_INTERVAL, SetSpec,
};
use crate::netlink::nftables::{self as nft, Expr};
use ipnetwork::Ipv6Network;
use std::fmt;

const IFNAMSIZ: usize = 16;
const IPV6_SADDR_OFFSET: u32 = 8;
/// ct state bits: established (1 << 1) and related (1 << 2).
const CT_ESTABLISHED_RELATED: u32 = 0b110;
/// ct status IPS_DST_NAT.
const CT_STATUS_DNAT: u32 = 1 << 5;
/// nft's datatype number for `ipv6_addr` (TYPE_IP6ADDR), so `nft list`
/// prints the set's elements as addresses.
const TYPE_IP6ADDR: u32 = 8;
pub const CHAIN_PREFIX: &str = "overlay-in-";
const RULE_DROP: &str = "drop";

/// The interface group of the network's host veths: FNV-1a of its name
/// with the high bit set, so never the default group 0.
pub fn group(network: &str) -> u32 {
    let hash = network.bytes().fold(0x811c_9dc5u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash | 0x8000_0000
}

pub fn chain_name(network: &str) -> String {
    format!("{CHAIN_PREFIX}{network}")
}

/// The set of the listed prefixes.
pub fn set_name(network: &str) -> String {
    format!("allow-{network}")
}

fn set_spec(name: &str) -> SetSpec<'_> {
    SetSpec {
        table: TABLE,
        name,
        key_type: TYPE_IP6ADDR,
        key_len: 16,
        flags: NFT_SET_INTERVAL,
    }
}

/// `iifname "TUN" meta oifgroup G`: from the overlay to this network's pods.
fn from_overlay_to_pods(conf: &NetConf) -> Vec<Expr> {
    let mut interface = conf.mycelium_interface.as_bytes().to_vec();
    interface.resize(IFNAMSIZ, 0);
    vec![
        nft::meta_load(nft::NFT_META_IIFNAME),
        nft::cmp(nft::NFT_CMP_EQ, &interface),
        nft::meta_load(nft::NFT_META_OIFGROUP),
        nft::cmp(nft::NFT_CMP_EQ, &group(&conf.name).to_ne_bytes()),
    ]
}

/// The listed prefixes of the setting (none for `open` and `replies`).
fn listed(conf: &NetConf) -> &[Ipv6Network] {
    match &conf.overlay_ingress {
        OverlayIngress::RepliesAnd(prefixes) => prefixes,
        _ => &[],
    }
}

/// The network's chain for the configured setting; None for `open`.
pub fn chain(conf: &NetConf) -> Option<ChainSpec> {
    if conf.overlay_ingress == OverlayIngress::Open {
        return None;
    }
    let accept = nft::verdict(nft::NF_ACCEPT);
    let with = |label, tail: Vec<Expr>| {
        let mut exprs = from_overlay_to_pods(conf);
        exprs.extend(tail);
        Rule { label, exprs }
    };
    let mut rules = vec![
        with(
            "established",
            vec![
                nft::ct_load(nft::NFT_CT_STATE),
                nft::bitwise_and(&CT_ESTABLISHED_RELATED.to_ne_bytes()),
                nft::cmp(nft::NFT_CMP_NEQ, &[0; 4]),
                accept.clone(),
            ],
        ),
        with(
            "dnat",
            vec![
                nft::ct_load(nft::NFT_CT_STATUS),
                nft::bitwise_and(&CT_STATUS_DNAT.to_ne_bytes()),
                nft::cmp(nft::NFT_CMP_NEQ, &[0; 4]),
                accept.clone(),
            ],
        ),
    ];
    if !listed(conf).is_empty() {
        let header = nft::NFT_PAYLOAD_NETWORK_HEADER;
        rules.push(with(
            "listed",
            vec![
                nft::meta_load(nft::NFT_META_NFPROTO),
                nft::cmp(nft::NFT_CMP_EQ, &[nft::NFPROTO_IPV6]),
                nft::payload_load(header, IPV6_SADDR_OFFSET, 16),
                nft_set::lookup(&set_name(&conf.name)),
                accept,
            ],
        ));
    }
    rules.push(with(
        RULE_DROP,
        vec![nft::counter(), nft::verdict(nft::NF_DROP)],
    ));
    Some(ChainSpec {
        name: chain_name(&conf.name),
        kind: "filter",
        hook: nft::NF_INET_FORWARD,
        priority: nft::NF_IP_PRI_FILTER,
        policy: nft::NF_ACCEPT,
        sets: Vec::new(),
        rules,
    })
}

/// Whether the kernel's elements (in its own order; set elements are
/// unique) are exactly the wanted ones (sorted).
fn same_elements(found: Option<&[Element]>, wanted: &[Element]) -> bool {
    found.is_some_and(|found| {
        found.len() == wanted.len() && found.iter().all(|e| wanted.binary_search(e).is_ok())
    })
}

/// The prefixes as an interval set's elements: each merged range
/// [start, end) is a start element and an end element flagged
/// INTERVAL_END (none when the range reaches the top of the space).
/// Overlapping and adjacent prefixes are merged: the kernel refuses
/// overlapping intervals. The elements come out sorted.
pub fn set_elements(prefixes: &[Ipv6Network]) -> Vec<Element> {
    let mut ranges: Vec<(u128, Option<u128>)> = prefixes
        .iter()
        .map(|p| {
            let start = u128::from(p.network());
            let size = 1u128.checked_shl(128 - u32::from(p.prefix()));
            (start, size.and_then(|size| start.checked_add(size)))
        })
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u128, Option<u128>)> = Vec::new();
    for (start, end) in ranges {
        match merged.last_mut() {
            Some((_, last_end)) if last_end.is_none_or(|e| start <= e) => {
                *last_end = last_end.and_then(|e| end.map(|n| e.max(n)));
            }
            _ => merged.push((start, end)),
        }
    }
    let mut elements = Vec::new();
    for (start, end) in merged {
        elements.push(Element {
            key: start.to_be_bytes().to_vec(),
            flags: 0,
        });
        if let Some(end) = end {
            elements.push(Element {
                key: end.to_be_bytes().to_vec(),
                flags: NFT_SET_ELEM_INTERVAL_END,
            });
        }
    }
    elements
}

/// What the kernel holds of one network's control.
#[derive(Debug, PartialEq, Eq)]
pub enum IngressState {
    /// `open`, and no chain filters the network's pods.
    Open,
    InForce {
        dropped: u64,
    },
    Missing,
    Altered(&'static str),
    /// `open` is configured, but a chain of an earlier setting still filters.
    Stale,
}

impl IngressState {
    /// What an operator does about it ("" when nothing is to be done).
    pub fn fix(&self) -> &'static str {
        match self {
            IngressState::InForce { .. } => "",
            IngressState::Open => OPEN_FIX,
            IngressState::Missing => {
                "none needed before the first pod: the next ADD or GC creates it"
            }
            IngressState::Altered(_) | IngressState::Stale => {
                "the next ADD or GC replaces it; do not edit the table by hand"
            }
        }
    }
}

/// How an `open` network is closed to the rest of the overlay.
pub const OPEN_FIX: &str = "set \"overlayIngress\": \"replies\" (pods only get answers to their own connections), or a list of the prefixes that may connect, e.g. your nodes' /64s: mycelium-cni install --overlay-ingress replies [--overlay-allow PREFIX]...";

impl fmt::Display for IngressState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IngressState::Open => f.write_str("open to the whole overlay"),
            IngressState::InForce { dropped } => {
                write!(f, "in force, {dropped} unsolicited packets dropped")
            }
            IngressState::Missing => f.write_str("its chain is missing"),
            IngressState::Altered(what) => write!(f, "its chain was altered: {what}"),
            IngressState::Stale => f.write_str("a chain of an earlier setting still filters"),
        }
    }
}

/// The network's control against the snapshot (and, with listed
/// prefixes, the set's elements: one more dump).
pub fn state(nl: &mut Netlink, snapshot: &Snapshot, conf: &NetConf) -> CniResult<IngressState> {
    let Some(spec) = chain(conf) else {
        return Ok(match snapshot.has_chain(&chain_name(&conf.name)) {
            true => IngressState::Stale,
            false => IngressState::Open,
        });
    };
    let dropped = match snapshot.state(&spec) {
        ChainState::InForce(counters) => counters.of(RULE_DROP),
        ChainState::Missing => return Ok(IngressState::Missing),
        ChainState::Altered(what) => return Ok(IngressState::Altered(what)),
    };
    let prefixes = listed(conf);
    if !prefixes.is_empty() {
        let set = set_name(&conf.name);
        let found = nl
            .set_elements(FAMILY, TABLE, &set)
            .wrap(format_args!("list set {set}"))?;
        if !same_elements(found.as_deref(), &set_elements(prefixes)) {
            return Ok(IngressState::Altered("its set of listed prefixes differs"));
        }
    }
    Ok(IngressState::InForce { dropped })
}

/// `state` on a fresh snapshot (CHECK, STATUS, doctor).
pub fn current_state(nl: &mut Netlink, conf: &NetConf) -> CniResult<IngressState> {
    let snapshot = Snapshot::read(nl)?;
    state(nl, &snapshot, conf)
}

/// The batch that replaces the network's chain and set with the setting.
pub fn replace_changes(conf: &NetConf, spec: &ChainSpec) -> Vec<nft::Change> {
    let set = set_name(&conf.name);
    let mut changes = nft_table::remove_changes(&spec.name);
    changes.extend(remove_set(&set));
    let prefixes = listed(conf);
    if !prefixes.is_empty() {
        changes.push(nft_set::new_set(FAMILY, &set_spec(&set)));
        let elements = set_elements(prefixes);
        changes.extend(nft_set::add_elements(FAMILY, TABLE, &set, &elements));
    }
    changes.extend(nft_table::create_changes(spec));
    changes
}

/// Deletes the set whether or not it exists: an empty one is declared first.
fn remove_set(name: &str) -> Vec<nft::Change> {
    vec![
        nft_set::new_set(FAMILY, &set_spec(name)),
        nft_set::delete_set(FAMILY, TABLE, name),
    ]
}

/// The network's chain and set removed (no chain once `open`, or no pod).
pub fn remove_changes(network: &str) -> Vec<nft::Change> {
    let mut changes = nft_table::remove_changes(&chain_name(network));
    changes.extend(remove_set(&set_name(network)));
    changes
}

/// ADD's and GC's part of the table's batch: nothing when the control is
/// as configured; otherwise the network's host veths get their group and
/// the chain is replaced (or removed, for `open`).
pub fn changes(
    nl: &mut Netlink,
    host: &mut Netlink,
    snapshot: &Snapshot,
    conf: &NetConf,
) -> CniResult<Vec<nft::Change>> {
    match state(nl, snapshot, conf)? {
        IngressState::Open | IngressState::InForce { .. } => Ok(Vec::new()),
        IngressState::Stale => Ok(remove_changes(&conf.name)),
        IngressState::Missing | IngressState::Altered(_) => {
            adopt_host_veths(host, &conf.name)?;
            let spec = chain(conf)
                .ok_or_else(|| CniError::new(IO_FAILURE, "overlayIngress: no chain for open"))?;
            Ok(replace_changes(conf, &spec))
        }
    }
}

/// Puts the network's host veths into its group: those attached by an
/// earlier version have the default group 0.
/// A host veth of another network already in the group is a collision
/// (see `collision`), refused before anything is regrouped.
pub fn adopt_host_veths(host: &mut Netlink, network: &str) -> CniResult<()> {
    let wanted = group(network);
    let links = host.links().wrap("list links")?;
    let of_network = |alias: &str| parse_alias(alias).is_some_and(|(n, _, _)| n == network);
    let other = links
        .iter()
        .filter(|l| is_ours(l) && l.group == wanted)
        .find_map(|l| parse_alias(&l.alias).and_then(|(n, _, _)| (n != network).then_some(n)));
    if let Some(other) = other {
        return Err(collision(network, other));
    }
    for link in links.iter().filter(|l| is_ours(l) && of_network(&l.alias)) {
        if link.group != wanted {
            host.set_group(link.index, wanted)
                .wrap(format_args!("set interface group of {}", link.name))?;
        }
    }
    Ok(())
}

/// Another network whose chains (overlay ingress, egress) in the table
/// name the same interface group as `network`: their names hash alike.
pub fn colliding_network<'a>(snapshot: &'a Snapshot, network: &str) -> Option<&'a str> {
    let wanted = group(network);
    snapshot
        .chain_names()
        .filter_map(|name| {
            name.strip_prefix(CHAIN_PREFIX)
                .or_else(|| name.strip_prefix(super::egress::CHAIN_PREFIX))
        })
        .find(|other| *other != network && group(other) == wanted)
}

/// Two networks in one interface group would each fall under the other's
/// overlay ingress and egress rules: refused (code 7), never shared.
pub fn collision(network: &str, other: &str) -> CniError {
    CniError::new(
        INVALID_CONFIG,
        format!(
            "invalid config: network {network:?} hashes to interface group {:#x}, which network {other:?} already uses on this node: pods of one would fall under the other's overlayIngress and egress rules; rename one of the two networks",
            group(network)
        ),
    )
}

/// The control is configured but nf_tables cannot carry it.
pub fn unusable(error: CniError) -> CniError {
    CniError::new(
        IO_FAILURE,
        format!(
            "overlayIngress: {}; it needs nf_tables with conntrack: enable that, or set \"overlayIngress\": \"open\"",
            error.msg
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(ingress: &str) -> NetConf {
        let text = format!(
            r#"{{"cniVersion":"1.0.0","name":"net1","myceliumInterface":"mycelium","overlayIngress":{ingress}}}"#
        );
        NetConf::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn groups_are_stable_distinct_and_never_the_default() {
        assert_eq!(group("net1"), group("net1"));
        assert_ne!(group("net1"), group("net2"));
        assert!(group("") & 0x8000_0000 != 0);
    }

    fn labels(conf: &NetConf) -> Vec<&'static str> {
        chain(conf).map_or_else(Vec::new, |c| c.rules.iter().map(|r| r.label).collect())
    }

    #[test]
    fn rules_follow_the_setting() {
        assert!(chain(&conf(r#""open""#)).is_none());
        assert_eq!(
            labels(&conf(r#""replies""#)),
            ["established", "dnat", "drop"]
        );
        let listed = conf(r#"["4aa:1:2:3::/64", "5b0::/12"]"#);
        assert_eq!(labels(&listed), ["established", "dnat", "listed", "drop"]);
        let spec = chain(&listed).unwrap();
        assert_eq!(
            spec.rules[2].exprs.last(),
            Some(&nft::verdict(nft::NF_ACCEPT))
        );
        assert!(spec.rules[2].exprs.contains(&nft_set::lookup("allow-net1")));
        assert_eq!(
            spec.rules[3].exprs.last(),
            Some(&nft::verdict(nft::NF_DROP))
        );
        for rule in &spec.rules {
            assert_eq!(rule.exprs[..4], from_overlay_to_pods(&listed)[..]);
        }
    }

    fn key(text: &str) -> Vec<u8> {
        text.parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
            .to_vec()
    }

    #[test]
    fn prefixes_become_merged_intervals() {
        let prefixes: Vec<Ipv6Network> =
            ["5b0::/12", "5b0:1::/64", "4aa:1:2:3::/64", "4aa:1:2:4::/64"]
                .iter()
                .map(|p| p.parse().unwrap())
                .collect();
        let end = NFT_SET_ELEM_INTERVAL_END;
        let element = |text, flags| Element {
            key: key(text),
            flags,
        };
        let expected = vec![
            element("4aa:1:2:3::", 0),
            element("4aa:1:2:5::", end),
            element("5b0::", 0),
            element("5c0::", end),
        ];
        assert_eq!(set_elements(&prefixes), expected);
        let mut shuffled = expected.clone();
        shuffled.reverse();
        assert!(same_elements(Some(&shuffled), &expected));
        assert!(!same_elements(Some(&shuffled[1..]), &expected));
        assert!(!same_elements(None, &expected));
        let everything = ["::/0".parse().unwrap()];
        assert_eq!(set_elements(&everything), vec![element("::", 0)]);
    }
}
