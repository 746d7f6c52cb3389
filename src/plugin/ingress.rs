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
//!   iifname "mycelium" oifgroup G ip6 saddr PREFIX accept   # one per listed prefix
//!   iifname "mycelium" oifgroup G counter drop
//! }
//! ```
//! `open` has no chain. Traffic from the node itself (output path), between
//! pods of the node (iif a veth) and what the node DNATs to a pod (a
//! Service the user exposed) is never dropped here.

use super::filter::TABLE;
use super::host_veth::is_ours;
use super::naming::parse_alias;
use crate::cni::config::{NetConf, OverlayIngress};
use crate::cni::error::{CniError, CniResult, IO_FAILURE, Wrap};
use crate::log;
use crate::netlink::Netlink;
use crate::netlink::nftables::{self as nft, BaseChain, Expr};
use ipnetwork::Ipv6Network;
use std::fmt;

const FAMILY: u8 = nft::NFPROTO_INET;
const IFNAMSIZ: usize = 16;
const NFPROTO_IPV6: u8 = 10;
const IPV6_SADDR_OFFSET: u32 = 8;
/// ct state bits: established (1 << 1) and related (1 << 2).
const CT_ESTABLISHED_RELATED: u32 = 0b110;
/// ct status IPS_DST_NAT.
const CT_STATUS_DNAT: u32 = 1 << 5;

/// The interface group of the network's host veths: FNV-1a of its name
/// with the high bit set, so never the default group 0.
pub fn group(network: &str) -> u32 {
    let hash = network.bytes().fold(0x811c_9dc5u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash | 0x8000_0000
}

pub fn chain_name(network: &str) -> String {
    format!("overlay-in-{network}")
}

fn chain_spec(name: &str) -> BaseChain<'_> {
    BaseChain {
        table: TABLE,
        name,
        hook: nft::NF_INET_FORWARD,
        priority: nft::NF_IP_PRI_FILTER,
        policy: nft::NF_ACCEPT,
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

/// `ip6 saddr PREFIX`, as nft builds it: a whole number of bytes compared,
/// or all 16 masked when the prefix ends inside a byte.
fn source_in(prefix: &Ipv6Network) -> Vec<Expr> {
    let bits = usize::from(prefix.prefix());
    let mut exprs = vec![
        nft::meta_load(nft::NFT_META_NFPROTO),
        nft::cmp(nft::NFT_CMP_EQ, &[NFPROTO_IPV6]),
    ];
    if bits == 0 {
        return exprs;
    }
    let len = if bits % 8 == 0 { bits / 8 } else { 16 };
    let header = nft::NFT_PAYLOAD_NETWORK_HEADER;
    exprs.push(nft::payload_load(header, IPV6_SADDR_OFFSET, len as u32));
    if bits % 8 != 0 {
        exprs.push(nft::bitwise_and(&prefix.mask().octets()));
    }
    let network = prefix.network().octets();
    exprs.push(nft::cmp(
        nft::NFT_CMP_EQ,
        network.get(..len).unwrap_or(&network),
    ));
    exprs
}

/// The chain's rules for the configured setting; none for `open`.
pub fn rules(conf: &NetConf) -> Vec<Vec<Expr>> {
    let prefixes = match &conf.overlay_ingress {
        OverlayIngress::Open => return Vec::new(),
        OverlayIngress::Replies => &[][..],
        OverlayIngress::RepliesAnd(prefixes) => &prefixes[..],
    };
    let accept = nft::verdict(nft::NF_ACCEPT);
    let with = |tail: Vec<Expr>| {
        let mut rule = from_overlay_to_pods(conf);
        rule.extend(tail);
        rule
    };
    let mut rules = vec![
        with(vec![
            nft::ct_load(nft::NFT_CT_STATE),
            nft::bitwise_and(&CT_ESTABLISHED_RELATED.to_ne_bytes()),
            nft::cmp(nft::NFT_CMP_NEQ, &[0; 4]),
            accept.clone(),
        ]),
        with(vec![
            nft::ct_load(nft::NFT_CT_STATUS),
            nft::bitwise_and(&CT_STATUS_DNAT.to_ne_bytes()),
            nft::cmp(nft::NFT_CMP_NEQ, &[0; 4]),
            accept.clone(),
        ]),
    ];
    for prefix in prefixes {
        let mut tail = source_in(prefix);
        tail.push(accept.clone());
        rules.push(with(tail));
    }
    rules.push(with(vec![nft::counter(), nft::verdict(nft::NF_DROP)]));
    rules
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

/// Compares the chain's rules in the kernel with the configured ones.
fn rules_state(nl: &mut Netlink, conf: &NetConf) -> CniResult<IngressState> {
    let chain = chain_name(&conf.name);
    let found = nl
        .rules(FAMILY, TABLE, &chain)
        .wrap(format_args!("list the rules of chain {chain}"))?;
    let wanted = rules(conf);
    Ok(match (wanted.is_empty(), found.is_empty()) {
        (true, true) => IngressState::Open,
        (true, false) => IngressState::Stale,
        (false, true) => IngressState::Missing,
        (false, false) => match nft::match_rules(&wanted, &found) {
            Some(counts) => IngressState::InForce {
                dropped: counts.iter().sum(),
            },
            None => IngressState::Altered("its rules differ from the setting"),
        },
    })
}

/// The full state, with the chain's hook, priority and policy (CHECK, doctor).
pub fn state(nl: &mut Netlink, conf: &NetConf) -> CniResult<IngressState> {
    let name = chain_name(&conf.name);
    let chain = nl
        .chain(FAMILY, TABLE, &name)
        .wrap(format_args!("look up chain {name}"))?;
    match chain {
        Some(chain) if !chain.is(&chain_spec(&name)) => Ok(IngressState::Altered(
            "it is not a filter on forward at priority filter with policy accept",
        )),
        _ => rules_state(nl, conf),
    }
}

/// ADD's and GC's step: one dump when the control is as configured;
/// otherwise the network's host veths get their group and the chain is
/// replaced (or removed, for `open`) in one batch.
pub fn ensure(nft_nl: &mut Netlink, host: &mut Netlink, conf: &NetConf) -> CniResult<()> {
    let name = chain_name(&conf.name);
    match rules_state(nft_nl, conf)? {
        IngressState::Open | IngressState::InForce { .. } => Ok(()),
        IngressState::Stale => nft_nl
            .batch(&nft::remove_chain(FAMILY, TABLE, &name))
            .wrap(format_args!("delete chain {name}")),
        IngressState::Missing | IngressState::Altered(_) => {
            adopt_host_veths(host, &conf.name)?;
            let changes = nft::replace_chain(FAMILY, &chain_spec(&name), &rules(conf));
            nft_nl
                .batch(&changes)
                .wrap(format_args!("install chain {name} in table inet {TABLE}"))
        }
    }
}

/// ADD's and GC's call: `ensure` with the error made a CNI one. With
/// `open` a failure is only logged: nf_tables is asked just for a chain of
/// an earlier setting, and a node without nf_tables must still work.
pub fn ensure_configured(
    nft: CniResult<Netlink>,
    host: &mut Netlink,
    conf: &NetConf,
) -> CniResult<()> {
    let ensured = nft.and_then(|mut nft| ensure(&mut nft, host, conf));
    match ensured {
        Err(error) if conf.overlay_ingress == OverlayIngress::Open => {
            let msg = &error.msg;
            log::line(&format!(
                "overlayIngress open; no earlier chain removed: {msg}"
            ));
            Ok(())
        }
        other => other.map_err(unusable),
    }
}

/// Puts the network's host veths into its group: those attached by an
/// earlier version have the default group 0.
pub fn adopt_host_veths(host: &mut Netlink, network: &str) -> CniResult<()> {
    let wanted = group(network);
    let links = host.links().wrap("list links")?;
    let of_network = |alias: &str| parse_alias(alias).is_some_and(|(n, _, _)| n == network);
    for link in links.iter().filter(|l| is_ours(l) && of_network(&l.alias)) {
        if link.group != wanted {
            host.set_group(link.index, wanted)
                .wrap(format_args!("set interface group of {}", link.name))?;
        }
    }
    Ok(())
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

    #[test]
    fn rules_follow_the_setting() {
        assert!(rules(&conf(r#""open""#)).is_empty());
        let replies = rules(&conf(r#""replies""#));
        assert_eq!(replies.len(), 3, "established/related, dnat, drop");
        let listed = rules(&conf(r#"["4aa:1:2:3::/64", "5b0::/12"]"#));
        assert_eq!(listed.len(), 5);
        // /64: 8 bytes compared, no mask; /12: all 16, masked.
        let names = |rule: &Vec<Expr>| rule.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
        assert!(!names(&listed[2]).contains(&"bitwise".to_string()));
        assert!(names(&listed[3]).contains(&"bitwise".to_string()));
        assert_eq!(listed[4].last(), Some(&nft::verdict(nft::NF_DROP)));
        for rule in &listed {
            assert_eq!(rule[..4], from_overlay_to_pods(&conf(r#""replies""#))[..]);
        }
    }

    #[test]
    fn prefix_bytes_are_the_network_part() {
        let prefix: Ipv6Network = "5b0::/12".parse().unwrap();
        let exprs = source_in(&prefix);
        let mut mask = [0u8; 16];
        mask[..2].copy_from_slice(&[0xff, 0xf0]);
        let mut network = [0u8; 16];
        network[..2].copy_from_slice(&[0x05, 0xb0]);
        assert_eq!(exprs[2], nft::payload_load(1, 8, 16));
        assert_eq!(exprs[3], nft::bitwise_and(&mask));
        assert_eq!(exprs[4], nft::cmp(nft::NFT_CMP_EQ, &network));
    }
}
