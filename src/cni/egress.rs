//! `egress` and `ipv4Pool`: what the pods reach beyond the overlay.
//!
//! - `"nat"` (the default): the pods also reach everything the node
//!   reaches. IPv6 leaves by the pod's `::/0` route and, out of any
//!   interface but the Mycelium one, is masqueraded to the node's address;
//!   each pod also gets a node-local IPv4 address from `ipv4Pool`, a
//!   default route, and is masqueraded likewise. Traffic into the overlay
//!   is never NATed.
//! - `"overlay"`: `400::/7`, `routes` and (with `defaultRoute`) `::/0` via
//!   the host, and nothing NATed: the behaviour before egress existed.

use super::error::{CniError, CniResult, INVALID_CONFIG};
use super::json::Fields;
use ipnetwork::Ipv4Network;
use std::net::Ipv4Addr;

/// 198.18.0.0/15 is reserved for benchmarking (RFC 2544) and not routed on
/// the internet; its first /16 clears k3s (10.42/16, 10.43/16), Docker
/// (172.17/16), Tailscale (100.64/10) and the usual LANs (192.168/16,
/// 10/8, 172.16/12).
pub const DEFAULT_IPV4_POOL: Ipv4Network =
    match Ipv4Network::new_checked(Ipv4Addr::new(198, 18, 0, 0), 16) {
        Some(pool) => pool,
        None => panic!("198.18.0.0/16"),
    };
/// The pods' IPv4 gateway: on every host veth of a `nat` network, as the
/// link-local `fe80::1` is for IPv6. The host answers ARP for it.
pub const IPV4_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// At least 2 usable addresses besides the network and broadcast ones.
const MAX_POOL_PREFIX: u8 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// Masquerade to the world the node reaches; pods get an IPv4 address
    /// from this pool.
    Nat { pool: Ipv4Network },
    /// The overlay (and configured routes) only.
    Overlay,
}

impl Egress {
    pub fn is_nat(&self) -> bool {
        matches!(self, Egress::Nat { .. })
    }

    pub fn pool(&self) -> Option<Ipv4Network> {
        match self {
            Egress::Nat { pool } => Some(*pool),
            Egress::Overlay => None,
        }
    }
}

impl std::fmt::Display for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Egress::Nat { pool } => write!(f, "nat (IPv4 pool {pool})"),
            Egress::Overlay => f.write_str("overlay"),
        }
    }
}

fn invalid(field: &str, value: &str, rule: &str) -> CniError {
    CniError::new(
        INVALID_CONFIG,
        format!("invalid config: {field} {value:?} {rule}"),
    )
}

/// The setting; without `egress`, `nat`, except for a secondary network
/// (`podInterface` set), where the main plugin owns the default routes and
/// `overlay` is the default.
pub fn parse(fields: &Fields) -> CniResult<Egress> {
    let pool = match fields.str("ipv4Pool")? {
        None => DEFAULT_IPV4_POOL,
        Some(text) => parse_pool(text)?,
    };
    let secondary = fields.get("podInterface").is_some();
    match fields.str("egress")? {
        None if secondary => Ok(Egress::Overlay),
        None | Some("nat") => Ok(Egress::Nat { pool }),
        Some("overlay") => Ok(Egress::Overlay),
        Some(other) => Err(invalid("egress", other, "must be \"nat\" or \"overlay\"")),
    }
}

/// An IPv4 CIDR of /30 or wider, host bits cleared.
fn parse_pool(text: &str) -> CniResult<Ipv4Network> {
    const RULE: &str =
        "must be an IPv4 CIDR of /30 or wider without 169.254.1.1, such as 198.18.0.0/16";
    let network: Ipv4Network = text.parse().map_err(|_| invalid("ipv4Pool", text, RULE))?;
    if network.prefix() > MAX_POOL_PREFIX || network.contains(IPV4_GATEWAY) {
        return Err(invalid("ipv4Pool", text, RULE));
    }
    Ipv4Network::new(network.network(), network.prefix())
        .map_err(|_| invalid("ipv4Pool", text, RULE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn egress(value: serde_json::Value) -> CniResult<Egress> {
        parse(&Fields::of(&value, "").unwrap())
    }

    #[test]
    fn nat_with_the_default_pool_unless_told_otherwise() {
        let default = Egress::Nat {
            pool: DEFAULT_IPV4_POOL,
        };
        assert_eq!(egress(json!({})).unwrap(), default);
        assert_eq!(egress(json!({"egress": "nat"})).unwrap(), default);
        assert_eq!(
            egress(json!({"egress": "overlay"})).unwrap(),
            Egress::Overlay
        );
        let secondary = json!({"podInterface": "myc0"});
        assert_eq!(
            egress(secondary).unwrap(),
            Egress::Overlay,
            "secondary network"
        );
        let asked = json!({"podInterface": "myc0", "egress": "nat"});
        assert_eq!(egress(asked).unwrap(), default);
        let pool = egress(json!({"ipv4Pool": "10.99.1.7/24"})).unwrap().pool();
        assert_eq!(pool.unwrap().to_string(), "10.99.1.0/24");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (value, key) in [
            (json!({"egress": "masquerade"}), "egress"),
            (json!({"egress": 1}), "egress"),
            (json!({"ipv4Pool": "fd00::/64"}), "ipv4Pool"),
            (json!({"ipv4Pool": "10.0.0.0/31"}), "ipv4Pool"),
            (json!({"ipv4Pool": "169.254.0.0/16"}), "ipv4Pool"),
        ] {
            let error = egress(value).unwrap_err();
            assert_eq!(error.code, INVALID_CONFIG);
            assert!(error.msg.contains(key), "{}", error.msg);
        }
    }
}
