//! The source filter: a packet entering the node from one of our host veths
//! must carry an address of the pod behind that veth (or a link-local
//! source, or `::` for duplicate address detection). One chain in the
//! plugin's table, whose `fib` rules hold no per-pod state: the reverse-path check asks the
//! FIB, where the /128 (and, with egress, /32) route ADD makes for each pod
//! is the allow-list. A pod without an IPv4 address (egress `overlay`) has
//! no /32, so all its IPv4 is dropped.
//!
//! ```text
//! table inet mycelium-cni {
//!   chain pod-source {
//!     type filter hook prerouting priority raw; policy accept;
//!     iifname "myc*" meta iifkind "veth" ip6 saddr . iif @pods6 accept
//!     iifname "myc*" meta iifkind "veth" ip saddr . iif @pods4 accept
//!     iifname "myc*" meta iifkind "veth" ip saddr 0.0.0.0 counter drop
//!     iifname "myc*" meta iifkind "veth" meta nfproto ipv4 fib saddr . iif oif missing counter drop
//!     iifname "myc*" meta iifkind "veth" ip6 saddr != :: fib saddr . iif oif missing counter drop
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
const RULE_IPV6: &str = "ipv6 foreign source";

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

/// The chain: IPv4 from 0.0.0.0 or with a foreign source dropped, then
/// IPv6 with a foreign source.
pub fn chain() -> ChainSpec {
    let drop = [nft::counter(), nft::verdict(nft::NF_DROP)];
    let rule = |label, tail: &[Expr]| {
        let mut exprs = from_host_veth();
        exprs.extend_from_slice(tail);
        exprs.extend(drop.clone());
        Rule { label, exprs }
    };
    let ipv4 = [
        nft::meta_load(nft::NFT_META_NFPROTO),
        nft::cmp(nft::NFT_CMP_EQ, &[nft::NFPROTO_IPV4]),
    ];
    let ipv6 = [
        nft::meta_load(nft::NFT_META_NFPROTO),
        nft::cmp(nft::NFT_CMP_EQ, &[nft::NFPROTO_IPV6]),
    ];
    let unspecified_ipv4 = [
        nft::payload_load(nft::NFT_PAYLOAD_NETWORK_HEADER, IPV4_SADDR_OFFSET, 4),
        nft::cmp(nft::NFT_CMP_EQ, &[0; 4]),
    ];
    let specified_ipv6 = [
        nft::payload_load(nft::NFT_PAYLOAD_NETWORK_HEADER, IPV6_SADDR_OFFSET, 16),
        nft::cmp(nft::NFT_CMP_NEQ, &[0; 16]),
    ];
    let foreign = [
        nft::fib(
            nft::NFT_FIB_RESULT_OIF,
            nft::NFTA_FIB_F_SADDR | nft::NFTA_FIB_F_IIF | nft::NFTA_FIB_F_PRESENT,
        ),
        nft::cmp(nft::NFT_CMP_EQ, &[0; 4]),
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
        rules: vec![
            fast(RULE_FAST_IPV6, fastpath::ipv6_rule()),
            fast(RULE_FAST_IPV4, fastpath::ipv4_rule()),
            rule(
                RULE_IPV4_UNSPECIFIED,
                &[&ipv4[..], &unspecified_ipv4].concat(),
            ),
            rule(RULE_IPV4, &[&ipv4[..], &foreign].concat()),
            rule(RULE_IPV6, &[&ipv6[..], &specified_ipv6, &foreign].concat()),
        ],
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

impl From<ChainState> for FilterState {
    fn from(state: ChainState) -> Self {
        match state {
            ChainState::InForce(counters) => FilterState::InForce {
                dropped_ipv4: counters.of(RULE_IPV4_UNSPECIFIED) + counters.of(RULE_IPV4),
                dropped_ipv6: counters.of(RULE_IPV6),
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
        let [unspecified, ipv4, ipv6] = [2, 3, 4].map(|i| &chain.rules[i].exprs);
        assert_eq!((unspecified.len(), ipv4.len(), ipv6.len()), (10, 10, 12));
        for rule in [unspecified, ipv4] {
            assert_eq!(rule[..4], ipv6[..4], "the veth match");
            assert_eq!(rule[4..6], ipv4[4..6], "nfproto ipv4");
        }
        assert!(!nft::same_expr(&ipv4[5], &ipv6[5]), "nfproto 2 vs 10");
        assert_eq!(ipv4[6..8], ipv6[8..10], "the same fib check");
    }

    #[test]
    fn the_fast_path_comes_first_and_only_accepts() {
        let chain = chain();
        let [fast6, fast4] = [0, 1].map(|i| &chain.rules[i].exprs);
        let ipv6 = &chain.rules[4].exprs;
        assert_eq!(fast6[..4], ipv6[..4], "the veth match");
        assert_eq!(fast6[4..6], ipv6[4..6], "nfproto ipv6");
        let accept = nft::verdict(nft::NF_ACCEPT);
        assert_eq!(fast6.last(), Some(&accept));
        assert_eq!(fast4.last(), Some(&accept));
        assert!(fast6.contains(&crate::netlink::nft_set::lookup(fastpath::SET_IPV6)));
        assert!(fast4.contains(&crate::netlink::nft_set::lookup(fastpath::SET_IPV4)));
    }

    #[test]
    fn replacement_is_one_batch_of_table_sets_chain_and_rules() {
        let changes = replace_changes();
        let kinds: Vec<u16> = changes.iter().map(|(kind, _, _)| kind & 0xff).collect();
        // NEWTABLE, NEWSET x2, NEWCHAIN (plain), DELCHAIN, NEWCHAIN, NEWRULE x5
        assert_eq!(kinds, [0, 9, 9, 3, 5, 3, 6, 6, 6, 6, 6]);
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
