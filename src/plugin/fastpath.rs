//! The source filter's fast path: one set per family of (pod address .
//! host veth index), looked up by the first rules of the filter chain.
//!
//! ```text
//! set pods6 { type ipv6_addr . iface_index; }
//! set pods4 { type ipv4_addr . iface_index; }
//! iifname "myc*" meta iifkind "veth" ip6 saddr . iif @pods6 accept
//! iifname "myc*" meta iifkind "veth" ip saddr . iif @pods4 accept
//! ```
//! A packet whose source and input veth are an element is accepted by one
//! hash lookup; every other packet goes on to the `fib` rules, which stay
//! the authority. So a missing element costs speed, never correctness, and
//! an element can only let through what `fib` would: the pod's own claimed
//! address on its own veth. ADD adds its pod's elements after it claimed
//! the addresses (one batch); DEL leaves them (the index dies with the
//! veth and the kernel does not hand it out again soon); GC removes every
//! element whose veth is gone, or whose address that veth does not claim,
//! and adds the missing ones of live pods.

use super::host_veth::is_ours;
use super::nft_table::{self, FAMILY, TABLE};
use crate::cni::error::{CniResult, Wrap};
use crate::log;
use crate::netlink::Netlink;
use crate::netlink::link::Link;
use crate::netlink::nft_set::{self, Element, SetSpec};
use crate::netlink::nftables::{self as nft, Expr};
use crate::netlink::route::Route;
use ipnetwork::IpNetwork;
use netlink_packet_route::AddressFamily;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const SET_IPV6: &str = "pods6";
pub const SET_IPV4: &str = "pods4";
/// nft's datatype numbers; a concatenation's type is the parts' types,
/// 6 bits each, the first part highest (`nft --debug=mnl`: 0x214).
const TYPE_IPV4_ADDR: u32 = 7;
const TYPE_IPV6_ADDR: u32 = 8;
const TYPE_IFACE_INDEX: u32 = 20;
const TYPE_BITS: u32 = 6;
const IPV6_SADDR_OFFSET: u32 = 8;
const IPV4_SADDR_OFFSET: u32 = 12;

/// The two sets, IPv6 then IPv4. Each part of a key takes a multiple of 4
/// bytes: 16 + 4 and 4 + 4.
pub fn sets() -> [SetSpec<'static>; 2] {
    let set = |name, address_type, address_len: u32| SetSpec {
        table: TABLE,
        name,
        key_type: (address_type << TYPE_BITS) | TYPE_IFACE_INDEX,
        key_len: address_len + 4,
        flags: 0,
    };
    [
        set(SET_IPV6, TYPE_IPV6_ADDR, 16),
        set(SET_IPV4, TYPE_IPV4_ADDR, 4),
    ]
}

/// `ip6 saddr . meta iif @pods6 accept` (after the veth match): the address
/// in register 1, the index in the register right after its 16 bytes.
pub fn ipv6_rule() -> Vec<Expr> {
    lookup_rule(
        nft::NFPROTO_IPV6,
        IPV6_SADDR_OFFSET,
        16,
        nft::NFT_REG_2,
        SET_IPV6,
    )
}

/// `ip saddr . meta iif @pods4 accept`: the index right after 4 bytes.
pub fn ipv4_rule() -> Vec<Expr> {
    let register = nft::NFT_REG32_01;
    lookup_rule(nft::NFPROTO_IPV4, IPV4_SADDR_OFFSET, 4, register, SET_IPV4)
}

fn lookup_rule(proto: u8, offset: u32, len: u32, index_register: u32, set: &str) -> Vec<Expr> {
    vec![
        nft::meta_load(nft::NFT_META_NFPROTO),
        nft::cmp(nft::NFT_CMP_EQ, &[proto]),
        nft::payload_load(nft::NFT_PAYLOAD_NETWORK_HEADER, offset, len),
        nft::meta_load_to(nft::NFT_META_IIF, index_register),
        nft_set::lookup(set),
        nft::verdict(nft::NF_ACCEPT),
    ]
}

/// One element: a pod address and the index of the veth it may send from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub address: IpAddr,
    pub index: u32,
}

impl Entry {
    /// The key: the address in network order, the index as the kernel's
    /// `meta iif` loads it (host order).
    fn element(&self) -> Element {
        let mut key = match self.address {
            IpAddr::V6(a) => a.octets().to_vec(),
            IpAddr::V4(a) => a.octets().to_vec(),
        };
        key.extend(self.index.to_ne_bytes());
        Element { key, flags: 0 }
    }

    fn parse(key: &[u8]) -> Option<Entry> {
        let (address, index) = key.split_at_checked(key.len().checked_sub(4)?)?;
        let address = match address.len() {
            16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(address).ok()?)),
            4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(address).ok()?)),
            _ => return None,
        };
        let index = u32::from_ne_bytes(index.try_into().ok()?);
        Some(Entry { address, index })
    }

    fn set(&self) -> &'static str {
        if self.address.is_ipv6() {
            SET_IPV6
        } else {
            SET_IPV4
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} . {}", self.address, self.index)
    }
}

/// One message per set that has entries; `op` builds it.
type ElementOp = fn(u8, &str, &str, &[Element]) -> Vec<nft::Change>;

fn changes(entries: &[Entry], op: ElementOp) -> Vec<nft::Change> {
    let mut changes = Vec::new();
    for set in [SET_IPV6, SET_IPV4] {
        let elements: Vec<Element> = entries
            .iter()
            .filter(|e| e.set() == set)
            .map(Entry::element)
            .collect();
        if !elements.is_empty() {
            changes.extend(op(FAMILY, TABLE, set, &elements));
        }
    }
    changes
}

/// ADD's batch: the pod's addresses on its host veth (an element that is
/// there already stays).
pub fn add_changes(index: u32, addresses: &[IpAddr]) -> Vec<nft::Change> {
    let entries: Vec<Entry> = addresses
        .iter()
        .map(|&address| Entry { address, index })
        .collect();
    changes(&entries, nft_set::ensure_elements)
}

/// ADD's last step, one round trip on the socket ADD read the table with
/// (a new one if it has none). Failing it costs the pod speed only (its
/// packets meet the `fib` rules), so it is logged, not an error.
pub fn add(nl: Option<&mut Netlink>, index: u32, addresses: &[IpAddr]) {
    if skipped() {
        return;
    }
    let batch = add_changes(index, addresses);
    let added = match nl {
        Some(nl) => nft_table::apply(nl, &batch, "add fast path elements"),
        None => nft_table::open()
            .and_then(|mut nl| nft_table::apply(&mut nl, &batch, "add fast path elements")),
    };
    if let Err(error) = added {
        log::line(&format!("slow path for this pod: {}", error.msg));
    }
}

/// The knob MYCELIUM_CNI_TEST_NO_FAST_PATH, in the `test-hooks` build only:
/// ADD adds no element, so that scripts/bench.sh can time ADD without its
/// round trip. A release binary has no such knob.
#[cfg(feature = "test-hooks")]
fn skipped() -> bool {
    std::env::var_os("MYCELIUM_CNI_TEST_NO_FAST_PATH").is_some()
}

#[cfg(not(feature = "test-hooks"))]
fn skipped() -> bool {
    false
}

/// Every element of both sets (a missing set reads as empty: the filter's
/// state reports it, since its rules cannot exist without it).
pub fn entries(nl: &mut Netlink) -> CniResult<Vec<Entry>> {
    let mut entries = Vec::new();
    for set in [SET_IPV6, SET_IPV4] {
        let elements = nl
            .set_elements(FAMILY, TABLE, set)
            .wrap(format_args!("list set {set}"))?;
        for element in elements.unwrap_or_default() {
            entries.extend(Entry::parse(&element.key));
        }
    }
    Ok(entries)
}

/// What an element is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The veth claims the address (its /128 or /32 host route).
    Live,
    /// Its veth is gone or no longer one of ours: it matches nothing.
    Stale,
    /// One of our veths, but the address is not that veth's: it lets the
    /// pod behind it send as that address without the `fib` check.
    Foreign,
}

/// The claims (host routes of a full-length prefix) and our veths, which
/// the elements are judged by.
pub struct Node {
    veths: Vec<u32>,
    claims: Vec<Entry>,
}

impl Node {
    pub fn new(links: &[Link], routes: &[Route]) -> Node {
        let veths = links.iter().filter(|l| is_ours(l)).map(|l| l.index);
        let claims = routes.iter().filter_map(|route| match route.destination {
            IpNetwork::V6(n) if n.prefix() == 128 => Some((IpAddr::V6(n.ip()), route.oif)),
            IpNetwork::V4(n) if n.prefix() == 32 => Some((IpAddr::V4(n.ip()), route.oif)),
            _ => None,
        });
        Node {
            veths: veths.collect(),
            claims: claims
                .map(|(address, index)| Entry { address, index })
                .collect(),
        }
    }

    /// Reads our veths and the claims: three dumps.
    pub fn read(host: &mut Netlink) -> CniResult<Node> {
        let links = host.links().wrap("list links")?;
        let mut routes = host
            .main_routes(AddressFamily::Inet6, None)
            .wrap("list IPv6 routes")?;
        let ipv4 = host.main_routes(AddressFamily::Inet, None);
        routes.extend(ipv4.wrap("list IPv4 routes")?);
        Ok(Node::new(&links, &routes))
    }

    /// The claims on our veths that have no element: those addresses take
    /// the slow path.
    pub fn missing(&self, entries: &[Entry]) -> Vec<Entry> {
        let on_veth = self.claims.iter().filter(|c| self.veths.contains(&c.index));
        on_veth.filter(|c| !entries.contains(c)).copied().collect()
    }

    pub fn verdict(&self, entry: &Entry) -> Verdict {
        if !self.veths.contains(&entry.index) {
            Verdict::Stale
        } else if self.claims.contains(entry) {
            Verdict::Live
        } else {
            Verdict::Foreign
        }
    }
}

/// The elements by verdict, for `list` and `doctor`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub live: usize,
    pub stale: usize,
    pub foreign: Vec<Entry>,
    /// Pod addresses without an element (the next GC adds them).
    pub missing: usize,
}

impl Summary {
    pub fn of(entries: &[Entry], node: &Node) -> Summary {
        let mut summary = Summary {
            missing: node.missing(entries).len(),
            ..Summary::default()
        };
        for entry in entries {
            match node.verdict(entry) {
                Verdict::Live => summary.live += 1,
                Verdict::Stale => summary.stale += 1,
                Verdict::Foreign => summary.foreign.push(*entry),
            }
        }
        summary
    }

    /// Reads the sets, then the links and routes (this order: an ADD
    /// adds its element after its veth and routes exist).
    pub fn read() -> CniResult<Summary> {
        let entries = entries(&mut nft_table::open()?)?;
        let node = Node::read(&mut Netlink::open().wrap("open netlink socket")?)?;
        Ok(Summary::of(&entries, &node))
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.live + self.stale + self.foreign.len();
        let (stale, missing) = (self.stale, self.missing);
        write!(
            f,
            "fast path: {total} elements, {stale} stale, {missing} pod addresses on the slow path"
        )?;
        for entry in &self.foreign {
            write!(f, ", {entry} not claimed by that veth")?;
        }
        Ok(())
    }
}

/// GC's step, one batch: every element that is not `Live` removed, and one
/// added for every pod address on one of our veths that has none (after a
/// table was deleted and restored, or an ADD killed before its last
/// request). `entries` were read before `node`. A concurrent GC that
/// removed one first fails the batch (ENOENT): logged, the next GC tries
/// again.
pub fn reconcile(nl: &mut Netlink, entries: &[Entry], node: &Node) -> CniResult<()> {
    let dead: Vec<Entry> = entries
        .iter()
        .filter(|e| node.verdict(e) != Verdict::Live)
        .copied()
        .collect();
    let missing = node.missing(entries);
    if dead.is_empty() && missing.is_empty() {
        return Ok(());
    }
    let mut batch = changes(&dead, nft_set::delete_elements);
    batch.extend(changes(&missing, nft_set::ensure_elements));
    match nl.batch(&batch) {
        Ok(()) => log::line(&format!(
            "GC: fast path: {} elements removed, {} added",
            dead.len(),
            missing.len()
        )),
        Err(error) if error.errno == libc::ENOENT => {
            log::line(&format!("GC: fast path left as it is: {error}"));
        }
        other => other.wrap(format_args!(
            "reconcile fast path elements in table inet {TABLE}"
        ))?,
    }
    Ok(())
}

/// CHECK's look at one pod: the elements on its veth against the addresses
/// the veth claims: the messages of foreign elements (errors) and of
/// missing ones (warnings).
pub fn pod_findings(
    entries: &[Entry],
    index: u32,
    claimed: &[IpAddr],
) -> (Vec<String>, Vec<String>) {
    let on_veth = entries.iter().filter(|e| e.index == index);
    let foreign = on_veth
        .filter(|e| !claimed.contains(&e.address))
        .map(|e| format!("fast path element {e} names an address this pod's veth does not claim"));
    let missing = claimed
        .iter()
        .filter(|a| !entries.contains(&Entry { address: **a, index }))
        .map(|a| format!("slow path: no fast path element {a} . {index}; the source filter still checks its packets by fib"));
    (foreign.collect(), missing.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_address_then_the_index_in_host_order() {
        let entry = Entry {
            address: "400::1".parse().unwrap(),
            index: 5,
        };
        let key = entry.element().key;
        assert_eq!(key.len(), 20, "ipv6_addr . iface_index");
        assert_eq!(key[..2], [4, 0]);
        assert_eq!(key[16..], 5u32.to_ne_bytes());
        assert_eq!(Entry::parse(&key), Some(entry), "read back");
        let v4 = Entry {
            address: "10.0.0.1".parse().unwrap(),
            index: 7,
        };
        assert_eq!(v4.element().key.len(), 8, "ipv4_addr . iface_index");
        assert_eq!(Entry::parse(&v4.element().key), Some(v4));
        assert_eq!(Entry::parse(&[1, 2, 3]), None, "too short");
    }

    #[test]
    fn set_types_are_nfts_concatenations() {
        let [v6, v4] = sets();
        assert_eq!((v6.key_type, v6.key_len), (0x214, 20));
        assert_eq!((v4.key_type, v4.key_len), ((7 << 6) | 20, 8));
    }

    #[test]
    fn add_is_one_message_per_family() {
        let addresses = ["400::1".parse().unwrap(), "10.0.0.1".parse().unwrap()];
        let changes = add_changes(3, &addresses);
        assert_eq!(changes.len(), 2);
        assert_eq!(add_changes(3, &addresses[..1]).len(), 1, "no IPv4");
    }

    fn veth(index: u32) -> Link {
        Link {
            index,
            name: format!("myc00000000000{index}"),
            kind: "veth".into(),
            ..Link::default()
        }
    }

    fn claim(address: &str, oif: u32) -> Route {
        Route {
            destination: IpNetwork::new(address.parse().unwrap(), 128).unwrap(),
            gateway: None,
            oif,
            table: 254,
        }
    }

    #[test]
    fn verdicts_follow_the_claims_and_the_veths() {
        let mut other = veth(9);
        other.name = "eth0".into();
        let node = Node::new(
            &[veth(3), veth(4), other],
            &[claim("400::3", 3), claim("400::4", 4)],
        );
        let entry = |address: &str, index| Entry {
            address: address.parse().unwrap(),
            index,
        };
        assert_eq!(node.verdict(&entry("400::3", 3)), Verdict::Live);
        assert_eq!(
            node.verdict(&entry("400::4", 3)),
            Verdict::Foreign,
            "neighbour's address"
        );
        assert_eq!(
            node.verdict(&entry("400::3", 5)),
            Verdict::Stale,
            "veth gone"
        );
        assert_eq!(
            node.verdict(&entry("400::3", 9)),
            Verdict::Stale,
            "not our veth"
        );
        let entries = [entry("400::3", 3), entry("400::4", 3), entry("400::3", 5)];
        let summary = Summary::of(&entries, &node);
        assert_eq!(
            (summary.live, summary.stale, summary.foreign.len()),
            (1, 1, 1)
        );
        assert!(
            summary
                .to_string()
                .starts_with("fast path: 3 elements, 1 stale")
        );
    }

    #[test]
    fn check_tells_foreign_from_missing() {
        let entry = |address: &str, index| Entry {
            address: address.parse().unwrap(),
            index,
        };
        let claimed: [IpAddr; 2] = ["400::3".parse().unwrap(), "10.0.0.3".parse().unwrap()];
        let entries = [entry("400::3", 3), entry("10.0.0.3", 3)];
        assert_eq!(pod_findings(&entries, 3, &claimed), (vec![], vec![]));
        let (foreign, missing) = pod_findings(&[entry("400::4", 3)], 3, &claimed);
        assert_eq!((foreign.len(), missing.len()), (1, 2));
        assert!(missing[0].starts_with("slow path"), "{missing:?}");
    }
}
