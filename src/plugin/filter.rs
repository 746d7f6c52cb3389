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
use crate::cni::error::{CniError, CniResult, IO_FAILURE, Wrap};
use crate::netlink::Netlink;
use crate::netlink::nftables::{self as nft, BaseChain, Expr};
use std::fmt;

pub const TABLE: &str = "mycelium-cni";
const CHAIN: &str = "pod-source";
const FAMILY: u8 = nft::NFPROTO_INET;
const IFNAMSIZ: usize = 16;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
/// The IPv6 header's source address: 16 bytes at offset 8.
const IPV6_SADDR_OFFSET: u32 = 8;

const CHAIN_SPEC: BaseChain<'static> = BaseChain {
    table: TABLE,
    name: CHAIN,
    hook: nft::NF_INET_PRE_ROUTING,
    priority: nft::NF_IP_PRI_RAW,
    policy: nft::NF_ACCEPT,
};

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

/// The two rules, in order: IPv4 dropped, then IPv6 with a foreign source.
fn rules() -> [Vec<Expr>; 2] {
    let drop = [nft::counter(), nft::verdict(nft::NF_DROP)];
    let mut ipv4 = from_host_veth();
    ipv4.extend([
        nft::meta_load(nft::NFT_META_NFPROTO),
        nft::cmp(nft::NFT_CMP_EQ, &[NFPROTO_IPV4]),
    ]);
    ipv4.extend(drop.clone());
    let mut ipv6 = from_host_veth();
    ipv6.extend([
        nft::meta_load(nft::NFT_META_NFPROTO),
        nft::cmp(nft::NFT_CMP_EQ, &[NFPROTO_IPV6]),
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
    nft::replace_chain(FAMILY, &CHAIN_SPEC, &rules())
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

/// Compares the rules in the kernel with ours (one dump).
fn rules_state(nl: &mut Netlink) -> CniResult<FilterState> {
    let found = nl
        .rules(FAMILY, TABLE, CHAIN)
        .wrap("list the source filter's rules")?;
    if found.is_empty() {
        return Ok(FilterState::Missing);
    }
    match nft::match_rules(&rules(), &found) {
        Some(counts) => Ok(FilterState::InForce {
            dropped_ipv4: counts.first().copied().unwrap_or(0),
            dropped_ipv6: counts.get(1).copied().unwrap_or(0),
        }),
        None => Ok(FilterState::Altered("its rules differ")),
    }
}

/// The full state: the base chain's hook, priority and policy, then the
/// rules (two requests). CHECK, STATUS and doctor ask this.
pub fn state(nl: &mut Netlink) -> CniResult<FilterState> {
    let chain = nl
        .chain(FAMILY, TABLE, CHAIN)
        .wrap("look up the source filter's chain")?;
    match chain {
        None => Ok(FilterState::Missing),
        Some(chain) if !chain.is(&CHAIN_SPEC) => Ok(FilterState::Altered(
            "its chain is not a filter on prerouting at priority raw with policy accept",
        )),
        Some(_) => rules_state(nl),
    }
}

/// ADD's step: one dump when the filter is in place; the whole table
/// replaced in one batch when it is missing or its rules differ.
pub fn ensure(nl: &mut Netlink) -> CniResult<()> {
    if let FilterState::InForce { .. } = rules_state(nl)? {
        return Ok(());
    }
    nl.batch(&replace_changes())
        .wrap(format_args!("install nf_tables table inet {TABLE}"))
}

/// `uninstall`: deletes the table; absent is fine.
pub fn remove(nl: &mut Netlink) -> CniResult<()> {
    let changes = [
        nft::new_table(FAMILY, TABLE),
        nft::delete_table(FAMILY, TABLE),
    ];
    nl.batch(&changes)
        .wrap(format_args!("delete nf_tables table inet {TABLE}"))
}

/// A netlink socket for nf_tables in the current namespace.
pub fn open() -> CniResult<Netlink> {
    Netlink::open_netfilter().wrap("open nf_tables netlink socket")
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
