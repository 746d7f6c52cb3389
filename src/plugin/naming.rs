//! Everything derived from (network, container ID, ifname): the host veth
//! name, its alias, and the pod's candidate addresses. No state on disk.

use ipnetwork::Ipv4Network;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const HOST_VETH_PREFIX: &str = "myc";
/// The gateway the pod sees: the host veth's link-local address.
pub const GATEWAY: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
pub const OVERLAY: Ipv6Addr = Ipv6Addr::new(0x400, 0, 0, 0, 0, 0, 0, 0);
pub const OVERLAY_PREFIX_LEN: u8 = 7;
/// Interface IDs of pod addresses start with this, apart from hand-made ones.
const IID_MARKER: u64 = 0xff0f << 48;
/// IFALIASZ is 256 and the kernel keeps at most 255 bytes of the attribute,
/// which we send with a NUL (`attrs::Body::string`): 254 bytes of text.
pub const MAX_ALIAS_LEN: usize = 254;

pub struct AttachmentId<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub ifname: &'a str,
    /// Bits of hash kept in names and addresses: 48, except in the tests'
    /// build (`hash_bits`).
    pub hash_bits: u32,
}

pub const HASH_BITS: u32 = 48;
/// Derived host veth names tried before ADD gives up.
pub const NAME_ATTEMPTS: u32 = 16;

/// The test knob MYCELIUM_CNI_TEST_HASH_BITS, in the `test-hooks` build
/// only: keep this many bits (1 to 48) of hash in names and addresses, so
/// that tests can force collisions. A release binary has no such knob.
#[cfg(feature = "test-hooks")]
fn hash_bits() -> u32 {
    std::env::var("MYCELIUM_CNI_TEST_HASH_BITS")
        .ok()
        .and_then(|bits| bits.parse().ok())
        .unwrap_or(HASH_BITS)
}

#[cfg(not(feature = "test-hooks"))]
fn hash_bits() -> u32 {
    HASH_BITS
}

impl<'a> AttachmentId<'a> {
    pub fn new(network: &'a str, container_id: &'a str, ifname: &'a str) -> Self {
        AttachmentId {
            network,
            container_id,
            ifname,
            hash_bits: hash_bits(),
        }
    }

    /// 64 bits from FNV-1a over the parts, with a purpose tag and attempt
    /// counter, then a SplitMix64 finish so close inputs land far apart.
    fn hash(&self, purpose: u8, attempt: u32) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for &byte in bytes {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for part in [self.network, self.container_id, self.ifname] {
            feed(part.as_bytes());
            feed(&[0]);
        }
        feed(&[purpose]);
        feed(&attempt.to_le_bytes());
        let mut z = hash.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn hash_mask(&self) -> u64 {
        (1u64 << self.hash_bits.clamp(1, HASH_BITS)) - 1
    }

    /// `myc` + 12 hex digits: 15 bytes, the kernel's maximum.
    pub fn host_veth_name(&self, attempt: u32) -> String {
        let hash = self.hash(b'n', attempt) & self.hash_mask();
        let mut name = String::with_capacity(15);
        name.push_str(HOST_VETH_PREFIX);
        for shift in (0..12).rev() {
            let nibble = (hash >> (shift * 4)) & 15;
            name.push(char::from_digit(nibble as u32, 16).unwrap_or('0'));
        }
        name
    }

    /// Whether `name` is one of the host veth names this attachment may have.
    pub fn may_own_host_veth(&self, name: &str) -> bool {
        (0..NAME_ATTEMPTS).any(|attempt| self.host_veth_name(attempt) == name)
    }

    /// `network/containerID/ifname`: none of the three may contain '/'.
    pub fn alias(&self) -> String {
        [self.network, self.container_id, self.ifname].join("/")
    }

    /// Candidate pod address number `attempt` inside the node's /64.
    pub fn pod_address(&self, node_prefix: u64, attempt: u32) -> Ipv6Addr {
        let iid = IID_MARKER | (self.hash(b'a', attempt) & self.hash_mask());
        Ipv6Addr::from((u128::from(node_prefix) << 64) | u128::from(iid))
    }

    /// Candidate pod IPv4 address number `attempt` inside `pool`, never its
    /// network or broadcast address.
    pub fn pod_ipv4(&self, pool: Ipv4Network, attempt: u32) -> Ipv4Addr {
        let size = 1u64 << (32 - u32::from(pool.prefix()).min(30));
        let offset = 1 + (self.hash(b'4', attempt) & self.hash_mask()) % (size - 2);
        Ipv4Addr::from(u32::from(pool.network()).wrapping_add(offset as u32))
    }
}

/// Whether `name` has the shape of `host_veth_name`: `myc` and 12
/// lowercase hex digits.
pub fn is_host_veth_name(name: &str) -> bool {
    name.strip_prefix(HOST_VETH_PREFIX).is_some_and(|hex| {
        hex.len() == 12
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Splits an alias written by `alias` back into (network, container ID, ifname).
pub fn parse_alias(alias: &str) -> Option<(&str, &str, &str)> {
    let mut parts = alias.split('/');
    let found = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        None
    } else {
        Some(found)
    }
}

/// The first 64 bits: the node's /64 in Mycelium.
pub fn node_prefix(address: Ipv6Addr) -> u64 {
    (u128::from(address) >> 64) as u64
}

/// The /64 of `address` as text: `5fd:a395:1a8d:501d::/64`.
pub fn prefix_text(address: Ipv6Addr) -> String {
    let network = Ipv6Addr::from(u128::from(node_prefix(address)) << 64);
    format!("{network}/64")
}

pub fn in_overlay(address: Ipv6Addr) -> bool {
    address.octets()[0] & 0xfe == 0x04
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: Ipv6Addr = Ipv6Addr::new(
        0x5fd, 0xa395, 0x1a8d, 0x501d, 0xf650, 0x6887, 0x2bd4, 0xee49,
    );

    fn id<'a>(container_id: &'a str) -> AttachmentId<'a> {
        AttachmentId {
            network: "mycelium",
            container_id,
            ifname: "eth0",
            hash_bits: HASH_BITS,
        }
    }

    #[test]
    fn pod_addresses_stay_in_the_node_64_and_carry_the_marker() {
        let prefix = node_prefix(NODE);
        assert_eq!(prefix, 0x05fd_a395_1a8d_501d);
        for n in 0..2000 {
            let container = format!("container-{n}");
            for attempt in 0..4 {
                let address = id(&container).pod_address(prefix, attempt);
                assert_eq!(node_prefix(address), prefix);
                assert_eq!(address.segments()[4], 0xff0f);
                assert!(!address.is_unspecified() && !address.is_loopback());
                assert_ne!(address, NODE);
                assert!(in_overlay(address));
            }
        }
    }

    #[test]
    fn addresses_are_stable_and_differ_by_input_and_attempt() {
        let prefix = node_prefix(NODE);
        assert_eq!(
            id("a").pod_address(prefix, 0),
            id("a").pod_address(prefix, 0)
        );
        assert_ne!(
            id("a").pod_address(prefix, 0),
            id("a").pod_address(prefix, 1)
        );
        assert_ne!(
            id("a").pod_address(prefix, 0),
            id("b").pod_address(prefix, 0)
        );
        let other_ifname = AttachmentId {
            network: "mycelium",
            container_id: "a",
            ifname: "eth1",
            hash_bits: HASH_BITS,
        };
        assert_ne!(
            id("a").pod_address(prefix, 0),
            other_ifname.pod_address(prefix, 0)
        );
        // The separator keeps ("ab","c") and ("a","bc") apart.
        let left = AttachmentId {
            network: "ab",
            container_id: "c",
            ifname: "eth0",
            hash_bits: HASH_BITS,
        };
        let right = AttachmentId {
            network: "a",
            container_id: "bc",
            ifname: "eth0",
            hash_bits: HASH_BITS,
        };
        assert_ne!(left.pod_address(prefix, 0), right.pod_address(prefix, 0));
    }

    #[test]
    fn known_vector_pins_the_derivation() {
        // Changing the hash would move every running pod's address on upgrade.
        let address = id("abc").pod_address(node_prefix(NODE), 0);
        assert_eq!(
            address.segments()[..5],
            [0x5fd, 0xa395, 0x1a8d, 0x501d, 0xff0f]
        );
        assert_eq!(
            address,
            "5fd:a395:1a8d:501d:ff0f:e820:377c:a77d"
                .parse::<Ipv6Addr>()
                .unwrap()
        );
        assert_eq!(id("abc").host_veth_name(0), "mycf49aa2b9efed");
    }

    #[test]
    fn veth_names_are_15_bytes_of_prefix_and_hex() {
        for n in 0..500 {
            let container = format!("c{n}");
            let name = id(&container).host_veth_name(n % 3);
            assert_eq!(name.len(), 15);
            assert!(name.starts_with("myc"));
            assert!(
                name[3..]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
        assert_ne!(id("a").host_veth_name(0), id("a").host_veth_name(1));
        assert!(is_host_veth_name(&id("a").host_veth_name(5)));
        for name in [
            "myc",
            "mycfoo",
            "myc0123456789abc",
            "myc0123456789aB",
            "abc0123456789ab",
        ] {
            assert!(!is_host_veth_name(name), "{name}");
        }
    }

    #[test]
    fn tiny_hash_space_collides_but_stays_in_shape() {
        fn tiny(container_id: &str) -> AttachmentId<'_> {
            AttachmentId {
                network: "n",
                container_id,
                ifname: "eth0",
                hash_bits: 2,
            }
        }
        let prefix = node_prefix(NODE);
        let mut seen = std::collections::HashSet::new();
        for n in 0..64 {
            let container = format!("c{n}");
            let address = tiny(&container).pod_address(prefix, 0);
            assert_eq!(
                u128::from(address) & 0xffff_ffff_ffff,
                u128::from(address) & 3
            );
            assert_eq!(tiny(&container).host_veth_name(0).len(), 15);
            seen.insert(address);
        }
        assert!(seen.len() <= 4);
    }

    #[test]
    fn alias_round_trips() {
        assert_eq!(id("c1").alias(), "mycelium/c1/eth0");
        assert_eq!(
            parse_alias("mycelium/c1/eth0"),
            Some(("mycelium", "c1", "eth0"))
        );
        assert_eq!(parse_alias("a/b"), None);
        assert_eq!(parse_alias("a/b/c/d"), None);
    }

    /// nf_tables names (chains, sets) hold NFT_NAME_MAXLEN 256 bytes with
    /// their NUL.
    const NFT_NAME_MAX_TEXT: usize = 255;

    #[test]
    fn every_name_derived_from_the_longest_network_fits() {
        let network = "n".repeat(crate::cni::config::MAX_NAME_LEN);
        let chain = crate::plugin::ingress::chain_name(&network);
        assert!(chain.len() <= NFT_NAME_MAX_TEXT, "{}", chain.len());
        let shortest = AttachmentId {
            network: &network,
            container_id: "c",
            ifname: "e",
            hash_bits: HASH_BITS,
        };
        assert!(shortest.alias().len() <= MAX_ALIAS_LEN);
        // One byte more and the chain would not fit.
        let longer = "n".repeat(crate::cni::config::MAX_NAME_LEN + 1);
        assert!(crate::plugin::ingress::chain_name(&longer).len() > NFT_NAME_MAX_TEXT);
    }

    #[test]
    fn prefix_text_is_the_64() {
        assert_eq!(prefix_text(NODE), "5fd:a395:1a8d:501d::/64");
        assert_eq!(prefix_text("4aa:1::1".parse().unwrap()), "4aa:1::/64");
    }

    #[test]
    fn overlay_is_400_slash_7() {
        assert!(in_overlay("400::1".parse().unwrap()));
        assert!(in_overlay("5ff:ffff::1".parse().unwrap()));
        assert!(!in_overlay("600::1".parse().unwrap()));
        assert!(!in_overlay("fe80::1".parse().unwrap()));
        assert!(!in_overlay("3ff::1".parse().unwrap()));
    }
}

#[cfg(test)]
mod ipv4_tests {
    use super::*;

    #[test]
    fn ipv4_candidates_stay_inside_the_pool_and_off_its_ends() {
        for (pool, bits) in [
            ("198.18.0.0/16", 48),
            ("10.9.8.4/30", 48),
            ("10.1.0.0/24", 2),
        ] {
            let pool: Ipv4Network = pool.parse().unwrap();
            let mut id = AttachmentId::new("net", "ctr", "eth0");
            id.hash_bits = bits;
            for attempt in 0..200 {
                let address = id.pod_ipv4(pool, attempt);
                assert!(pool.contains(address), "{address} outside {pool}");
                assert_ne!(address, pool.network());
                assert_ne!(address, pool.broadcast());
            }
        }
        let pool = "198.18.0.0/16".parse().unwrap();
        let a = AttachmentId::new("net", "ctr-a", "eth0");
        let b = AttachmentId::new("net", "ctr-b", "eth0");
        assert_ne!(a.pod_ipv4(pool, 0), b.pod_ipv4(pool, 0));
        assert_eq!(a.pod_ipv4(pool, 0), a.pod_ipv4(pool, 0));
    }
}
