//! The source filter: a packet entering the node from one of our host veths
//! must carry an address of the pod behind that veth (or a link-local
//! source, or `::` for duplicate address detection). One chain in the
//! plugin's table, whose `fib` rules hold no per-pod state: the
//! reverse-path check asks the FIB, where the /128 (and, with egress, /32)
//! route ADD makes for each pod is the allow-list. A pod without an IPv4
//! address (egress `overlay`) has no /32, so all its IPv4 is dropped.
//!
//! ```text
//! table inet mycelium-cni {
//!   chain pod-source {
//!     type filter hook prerouting priority raw; policy accept;
//!     iifname "myc*" meta iifkind "veth" ip6 saddr . iif @pods6 accept
//!     iifname "myc*" meta iifkind "veth" ip saddr . iif @pods4 accept
//!     iifname "myc*" meta iifkind "veth" ip saddr 0.0.0.0 counter drop
//!     iifname "myc*" meta iifkind "veth" meta nfproto ipv4 fib saddr . iif oif missing counter drop
//!     iifname "myc*" meta iifkind "veth" ip6 saddr :: meta l4proto != ipv6-icmp counter drop
//!     iifname "myc*" meta iifkind "veth" ip6 saddr :: icmpv6 type != { 135, 143 } counter drop
//!     iifname "myc*" meta iifkind "veth" ip6 saddr != :: fib saddr . iif oif missing counter drop
//!     iifname "myc*" meta iifkind "veth" icmpv6 type { 133, 135 }
//!       meter ndp-meter { iif timeout 60s limit rate over 20/second burst 50 packets } counter drop
//!   }
//! }
//! ```
//! `iifkind "veth"` keeps the Mycelium TUN (`mycelium` starts with `myc`
//! too) out of it. The first two rules are the fast path (`fastpath.rs`):
//! a pod's own address on its own veth is accepted by one set lookup;
//! everything else meets the `fib` rules, which stay the authority.

use super::fastpath;
use super::naming::HOST_VETH_PREFIX;
use super::nft_table::{self, ChainSpec, ChainState, Rule, Snapshot, TABLE};
use crate::cni::error::{CniError, CniResult, IO_FAILURE};
use crate::netlink::Netlink;
use crate::netlink::nft_set::{self, MeterSpec};
use crate::netlink::nftables::{self as nft, Expr};
use std::fmt;

pub const CHAIN: &str = "pod-source";
const IFNAMSIZ: usize = 16;
/// The IPv6 header's source address: 16 bytes at offset 8.
const IPV6_SADDR_OFFSET: u32 = 8;
/// The IPv4 header's source address: 4 bytes at offset 12.
const IPV4_SADDR_OFFSET: u32 = 12;
const RULE_FAST_IPV6: &str = "ipv6 fast path";
const RULE_FAST_IPV4: &str = "ipv4 fast path";
const RULE_IPV4_UNSPECIFIED: &str = "ipv4 from 0.0.0.0";
const RULE_IPV4: &str = "ipv4 foreign source";
const RULE_UNSPECIFIED_NOT_ICMPV6: &str = "ipv6 from :: not icmpv6";
const RULE_UNSPECIFIED_NOT_DAD: &str = "ipv6 from :: not dad";
const RULE_IPV6: &str = "ipv6 foreign source";
const RULE_SOLICITATION_FLOOD: &str = "solicitation flood";
const IPPROTO_ICMPV6: u8 = libc::IPPROTO_ICMPV6 as u8;
/// ICMPv6 types: what duplicate address detection sends from `::` (a
/// neighbour solicitation, and the MLDv2 report of joining the
/// solicited-node group), and the router solicitation.
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const MLD2_LISTENER_REPORT: u8 = 143;
const ND_ROUTER_SOLICIT: u8 = 133;
/// 133 (0x85) and 135 (0x87) are the only ICMPv6 types equal under 0xfd.
const SOLICITATION_MASK: u8 = 0xfd;
/// Per veth: 20 solicitations a second after a burst of 50.
const NDP_RATE: u64 = 20;
const NDP_BURST: u32 = 50;
const NDP_METER: &str = "ndp-meter";
const NDP_METER_ID: u32 = 2;
/// nft's datatype number for `iface_index`.
const TYPE_IFINDEX: u32 = 20;

/// `iifname "myc*" meta iifkind "veth"`
fn from_host_veth() -> Vec<Expr> {
    let mut kind = b"veth".to_vec();
    kind.resize(IFNAMSIZ, 0);
    vec![
        nft::meta_load(nft::NFT_META_IIFNAME),
        nft::cmp(nft::NFT_CMP_EQ, HOST_VETH_PREFIX.as_bytes()),
        nft::meta_load(nft::NFT_META_IIFKIND),
        nft::cmp(nft::NFT_CMP_EQ, &kind),
    ]
}

/// The chain: IPv4 from 0.0.0.0 or with a foreign source dropped; IPv6
/// from `::` unless it is duplicate address detection's; IPv6 with a
/// foreign source; neighbour and router solicitations past a per-veth
/// rate.
pub fn chain() -> ChainSpec {
    let drop = [nft::counter(), nft::verdict(nft::NF_DROP)];
    let rule = |label, tail: &[Expr]| {
        let mut exprs = from_host_veth();
        exprs.extend_from_slice(tail);
        exprs.extend(drop.clone());
        Rule { label, exprs }
    };
    let ipv4 = nfproto(nft::NFPROTO_IPV4);
    let ipv6 = nfproto(nft::NFPROTO_IPV6);
    let source = |offset, len: usize, op| {
        [
            nft::payload_load(nft::NFT_PAYLOAD_NETWORK_HEADER, offset, len as u32),
            nft::cmp(op, &vec![0; len]),
        ]
    };
    let foreign = [
        nft::fib(
            nft::NFT_FIB_RESULT_OIF,
            nft::NFTA_FIB_F_SADDR | nft::NFTA_FIB_F_IIF | nft::NFTA_FIB_F_PRESENT,
        ),
        nft::cmp(nft::NFT_CMP_EQ, &[0; 4]),
    ];
    let unspecified_ipv6 = source(IPV6_SADDR_OFFSET, 16, nft::NFT_CMP_EQ);
    let l4proto = |op| {
        [
            nft::meta_load(nft::NFT_META_L4PROTO),
            nft::cmp(op, &[IPPROTO_ICMPV6]),
        ]
    };
    let icmpv6_type = nft::payload_load(nft::NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
    let not_dad = [
        icmpv6_type.clone(),
        nft::cmp(nft::NFT_CMP_NEQ, &[ND_NEIGHBOR_SOLICIT]),
        nft::cmp(nft::NFT_CMP_NEQ, &[MLD2_LISTENER_REPORT]),
    ];
    let solicitation = [
        icmpv6_type,
        nft::bitwise_and(&[SOLICITATION_MASK]),
        nft::cmp(nft::NFT_CMP_EQ, &[ND_ROUTER_SOLICIT]),
        nft::meta_load(nft::NFT_META_IIF),
        nft_set::dynset_update(&ndp_meter(), &nft_set::limit_over(NDP_RATE, NDP_BURST)),
    ];
    let fast = |label, tail: Vec<Expr>| Rule {
        label,
        exprs: [from_host_veth(), tail].concat(),
    };
    ChainSpec {
        name: CHAIN.into(),
        kind: "filter",
        hook: nft::NF_INET_PRE_ROUTING,
        priority: nft::NF_IP_PRI_RAW,
        policy: nft::NF_ACCEPT,
        sets: vec![nft_set::new_meter(nft_table::FAMILY, &ndp_meter())],
        rules: vec![
            fast(RULE_FAST_IPV6, fastpath::ipv6_rule()),
            fast(RULE_FAST_IPV4, fastpath::ipv4_rule()),
            rule(
                RULE_IPV4_UNSPECIFIED,
                &[&ipv4[..], &source(IPV4_SADDR_OFFSET, 4, nft::NFT_CMP_EQ)].concat(),
            ),
            rule(RULE_IPV4, &[&ipv4[..], &foreign].concat()),
            rule(
                RULE_UNSPECIFIED_NOT_ICMPV6,
                &[&ipv6[..], &unspecified_ipv6, &l4proto(nft::NFT_CMP_NEQ)].concat(),
            ),
            rule(
                RULE_UNSPECIFIED_NOT_DAD,
                &[
                    &ipv6[..],
                    &unspecified_ipv6,
                    &l4proto(nft::NFT_CMP_EQ),
                    &not_dad,
                ]
                .concat(),
            ),
            rule(
                RULE_IPV6,
                &[
                    &ipv6[..],
                    &source(IPV6_SADDR_OFFSET, 16, nft::NFT_CMP_NEQ),
                    &foreign,
                ]
                .concat(),
            ),
            rule(
                RULE_SOLICITATION_FLOOD,
                &[&ipv6[..], &l4proto(nft::NFT_CMP_EQ), &solicitation].concat(),
            ),
        ],
    }
}

fn nfproto(family: u8) -> [Expr; 2] {
    [
        nft::meta_load(nft::NFT_META_NFPROTO),
        nft::cmp(nft::NFT_CMP_EQ, &[family]),
    ]
}

/// Per host veth (its index), a bucket of neighbour and router
/// solicitations: each one a pod sends with a new link-local source makes
/// the node a neighbour entry, and a flood of them filled the node's table
/// (1,500 in a burst left the node unable to reach other pods for 20 s).
fn ndp_meter() -> MeterSpec<'static> {
    MeterSpec {
        table: TABLE,
        name: NDP_METER,
        id: NDP_METER_ID,
        key_type: TYPE_IFINDEX,
        key_len: 4,
        size: 4096,
        timeout_ms: 60_000,
    }
}

/// The chain and its rules, replacing any copy in one batch; other chains
/// of the table (the overlay ingress controls) are left alone. The fast
/// path's sets are created when missing and kept with their elements
/// otherwise (their rules cannot exist without them, so a missing set
/// reads as an altered chain).
pub fn replace_changes() -> Vec<nft::Change> {
    nft_table::replace_changes_with_sets(&chain(), &fastpath::sets())
}

/// What the kernel holds of the filter.
#[derive(Debug, PartialEq, Eq)]
pub enum FilterState {
    InForce {
        dropped_ipv6: u64,
        dropped_ipv4: u64,
    },
    Missing,
    /// What differs from the filter this version makes.
    Altered(&'static str),
}

impl fmt::Display for FilterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterState::InForce {
                dropped_ipv6,
                dropped_ipv4,
            } => write!(
                f,
                "in force (table inet {TABLE}), {} packets dropped (IPv6 with a foreign source {dropped_ipv6}, IPv4 {dropped_ipv4})",
                dropped_ipv6 + dropped_ipv4
            ),
            FilterState::Missing => write!(f, "table inet {TABLE} is missing"),
            FilterState::Altered(what) => write!(f, "table inet {TABLE} was altered: {what}"),
        }
    }
}

impl FilterState {
    /// What an operator does about it ("" when nothing is to be done).
    pub fn fix(&self) -> &'static str {
        match self {
            FilterState::InForce { .. } => "",
            FilterState::Missing => "none needed before the first pod: the next ADD creates it",
            FilterState::Altered(_) => "the next ADD replaces it; do not edit the table by hand",
        }
    }
}

impl From<ChainState> for FilterState {
    fn from(state: ChainState) -> Self {
        match state {
            ChainState::InForce(counters) => FilterState::InForce {
                dropped_ipv4: counters.of(RULE_IPV4_UNSPECIFIED) + counters.of(RULE_IPV4),
                dropped_ipv6: counters.of(RULE_IPV6)
                    + counters.of(RULE_UNSPECIFIED_NOT_ICMPV6)
                    + counters.of(RULE_UNSPECIFIED_NOT_DAD),
            },
            ChainState::Missing => FilterState::Missing,
            ChainState::Altered(what) => FilterState::Altered(what),
        }
    }
}

/// The filter as the kernel holds it (CHECK, STATUS, doctor, list).
pub fn state(nl: &mut Netlink) -> CniResult<FilterState> {
    Ok(Snapshot::read(nl)?.state(&chain()).into())
}

/// ADD's part of the table's batch: nothing when the filter is in force,
/// else the chain replaced.
pub fn changes(snapshot: &Snapshot) -> Vec<nft::Change> {
    match snapshot.state(&chain()) {
        ChainState::InForce(_) => Vec::new(),
        _ => replace_changes(),
    }
}

/// The filter is on but nf_tables cannot carry it: say which key turns it off.
pub fn unusable(error: CniError) -> CniError {
    CniError::new(
        IO_FAILURE,
        format!(
            "source filter: {}; it needs nf_tables (with fib): enable that, or set \"sourceFilter\": false to attach pods without it",
            error.msg
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_share_the_veth_match_and_differ_after() {
        let chain = chain();
        let labels: Vec<&str> = chain.rules.iter().map(|r| r.label).collect();
        assert_eq!(
            labels,
            [
                RULE_FAST_IPV6,
                RULE_FAST_IPV4,
                RULE_IPV4_UNSPECIFIED,
                RULE_IPV4,
                RULE_UNSPECIFIED_NOT_ICMPV6,
                RULE_UNSPECIFIED_NOT_DAD,
                RULE_IPV6,
                RULE_SOLICITATION_FLOOD
            ]
        );
        let [ipv4, ipv6] = [3, 6].map(|i| &chain.rules[i].exprs);
        for rule in &chain.rules {
            assert_eq!(rule.exprs[..4], ipv6[..4], "the veth match");
        }
        assert!(!nft::same_expr(&ipv4[5], &ipv6[5]), "nfproto 2 vs 10");
        assert_eq!(ipv4[6..8], ipv6[8..10], "the same fib check");
        let flood = &chain.rules[7].exprs;
        assert_eq!(flood.last(), Some(&nft::verdict(nft::NF_DROP)));
        assert!(flood.iter().any(|e| e.name == "dynset"));
    }

    #[test]
    fn the_fast_path_comes_first_and_only_accepts() {
        let chain = chain();
        let [fast6, fast4] = [0, 1].map(|i| &chain.rules[i].exprs);
        let ipv6 = &chain.rules[6].exprs;
        assert_eq!(fast6[..4], ipv6[..4], "the veth match");
        assert_eq!(fast6[4..6], ipv6[4..6], "nfproto ipv6");
        let accept = nft::verdict(nft::NF_ACCEPT);
        assert_eq!(fast6.last(), Some(&accept));
        assert_eq!(fast4.last(), Some(&accept));
        assert!(fast6.contains(&crate::netlink::nft_set::lookup(fastpath::SET_IPV6)));
        assert!(fast4.contains(&crate::netlink::nft_set::lookup(fastpath::SET_IPV4)));
    }

    #[test]
    fn replacement_is_one_batch_of_table_sets_chain_meter_and_rules() {
        let changes = replace_changes();
        let kinds: Vec<u16> = changes.iter().map(|(kind, _, _)| kind & 0xff).collect();
        // NEWTABLE, NEWSET x2 (the fast path), NEWCHAIN (plain), DELCHAIN,
        // NEWCHAIN, NEWSET (the meter), NEWRULE x8
        assert_eq!(kinds, [0, 9, 9, 3, 5, 3, 9, 6, 6, 6, 6, 6, 6, 6, 6]);
    }

    #[test]
    fn states_say_what_is_wrong() {
        assert_eq!(
            FilterState::Missing.to_string(),
            "table inet mycelium-cni is missing"
        );
        let state = FilterState::InForce {
            dropped_ipv6: 3,
            dropped_ipv4: 1,
        };
        assert!(state.to_string().starts_with("in force"), "{state}");
        assert!(state.to_string().contains("4 packets dropped"), "{state}");
        let error = unusable(CniError::new(IO_FAILURE, "x: Protocol not supported"));
        assert!(
            error.msg.contains("\"sourceFilter\": false"),
            "{}",
            error.msg
        );
    }
}
