//! The source filter: a packet entering the node from one of our host veths
//! must carry the address of the pod behind that veth (or a link-local
//! source, or `::` for duplicate address detection); IPv4 is dropped. One
//! nf_tables table of our own, with no per-pod state: the reverse-path check
//! asks the FIB, where the /128 route ADD makes for each pod is the
//! allow-list.
//!
//! ```text
//! table inet mycelium-cni {
//!   chain pod-source {
//!     type filter hook prerouting priority raw; policy accept;
//!     iifname "myc*" meta iifkind "veth" meta nfproto ipv4 counter drop
//!     iifname "myc*" meta iifkind "veth" ip6 saddr != :: fib saddr . iif oif missing counter drop
//!   }
//! }
//! ```
//! `iifkind "veth"` keeps the Mycelium TUN (`mycelium` starts with `myc`
//! too) out of it.

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
const RULE_IPV4: &str = "ipv4";
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

/// The chain: IPv4 dropped, then IPv6 with a foreign source.
pub fn chain() -> ChainSpec {
    let [ipv4, ipv6] = rules();
    ChainSpec {
        name: CHAIN.into(),
        kind: "filter",
        hook: nft::NF_INET_PRE_ROUTING,
        priority: nft::NF_IP_PRI_RAW,
        policy: nft::NF_ACCEPT,
        rules: vec![
            Rule {
                label: RULE_IPV4,
                exprs: ipv4,
            },
            Rule {
                label: RULE_IPV6,
                exprs: ipv6,
            },
        ],
    }
}

fn rules() -> [Vec<Expr>; 2] {
    let drop = [nft::counter(), nft::verdict(nft::NF_DROP)];
    let mut ipv4 = from_host_veth();
    ipv4.extend([
        nft::meta_load(nft::NFT_META_NFPROTO),
        nft::cmp(nft::NFT_CMP_EQ, &[nft::NFPROTO_IPV4]),
    ]);
    ipv4.extend(drop.clone());
    let mut ipv6 = from_host_veth();
    ipv6.extend([
        nft::meta_load(nft::NFT_META_NFPROTO),
        nft::cmp(nft::NFT_CMP_EQ, &[nft::NFPROTO_IPV6]),
        nft::payload_load(nft::NFT_PAYLOAD_NETWORK_HEADER, IPV6_SADDR_OFFSET, 16),
        nft::cmp(nft::NFT_CMP_NEQ, &[0; 16]),
        nft::fib(
            nft::NFT_FIB_RESULT_OIF,
            nft::NFTA_FIB_F_SADDR | nft::NFTA_FIB_F_IIF | nft::NFTA_FIB_F_PRESENT,
        ),
        nft::cmp(nft::NFT_CMP_EQ, &[0; 4]),
    ]);
    ipv6.extend(drop);
    [ipv4, ipv6]
}

/// The chain and its rules, replacing any copy in one batch; other chains
/// of the table (the overlay ingress controls) are left alone.
pub fn replace_changes() -> Vec<nft::Change> {
    nft_table::replace_changes(&chain())
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
                dropped_ipv4: counters.of(RULE_IPV4),
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
    fn rules_match_themselves_and_not_each_other() {
        let [ipv4, ipv6] = rules();
        assert_eq!(ipv4.len(), 8);
        assert_eq!(ipv6.len(), 12);
        for (a, b) in ipv4.iter().zip(&ipv6).take(4) {
            assert!(nft::same_expr(a, b));
        }
        assert!(!nft::same_expr(&ipv4[5], &ipv6[5]), "nfproto 2 vs 10");
    }

    #[test]
    fn replacement_is_one_batch_of_table_chain_and_two_rules() {
        let changes = replace_changes();
        let kinds: Vec<u16> = changes.iter().map(|(kind, _, _)| kind & 0xff).collect();
        // NEWTABLE, NEWCHAIN (plain), DELCHAIN, NEWCHAIN, NEWRULE, NEWRULE
        assert_eq!(kinds, [0, 3, 5, 3, 6, 6]);
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
