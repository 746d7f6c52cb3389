//! The addresses ADD may claim: the one the runtime asked for
//! (`runtimeConfig.ips`, capability `ips`, or CNI_ARGS `IP=`), checked
//! against the node before anything is created, or else the candidates
//! derived from the attachment.

use super::naming::{self, AttachmentId};
use super::node::Node;
use crate::cni::args;
use crate::cni::config::NetConf;
use crate::cni::env::Env;
use crate::cni::error::{ADDRESS_TAKEN, CniError, CniResult, INVALID_CONFIG, NO_FREE_ADDRESS};
use serde_json::Value;
use std::net::{IpAddr, Ipv6Addr};

/// Derived candidates tried before ADD gives up.
pub const ADDRESS_ATTEMPTS: u32 = 64;

/// What ADD tries, in order, to claim with the exclusive /128 route.
pub struct Candidates {
    pub addresses: Vec<Ipv6Addr>,
    /// One address the runtime asked for: taken is an error, not a retry.
    pub requested: bool,
}

impl Candidates {
    /// The requested address if there is one, else the derived candidates.
    pub fn for_attachment(
        env: &Env,
        conf: &NetConf,
        node: &Node,
        id: &AttachmentId,
    ) -> CniResult<Candidates> {
        if let Some(address) = requested(env, conf, node)? {
            return Ok(Candidates {
                addresses: vec![address],
                requested: true,
            });
        }
        let addresses = (0..ADDRESS_ATTEMPTS)
            .map(|attempt| id.pod_address(node.prefix(), attempt))
            .filter(|candidate| *candidate != node.address)
            .collect();
        Ok(Candidates {
            addresses,
            requested: false,
        })
    }

    /// Every candidate's /128 route already existed.
    pub fn exhausted(&self) -> CniError {
        match self.addresses.first() {
            Some(address) if self.requested => CniError::new(
                ADDRESS_TAKEN,
                format!(
                    "requested address {address} is already in use on this node (a /128 route to it exists; mycelium-cni list shows the attachments)"
                ),
            ),
            _ => CniError::new(
                NO_FREE_ADDRESS,
                format!("no free pod address in the node /64 after {ADDRESS_ATTEMPTS} attempts"),
            ),
        }
    }
}

fn refused(msg: String) -> CniError {
    CniError::new(INVALID_CONFIG, msg)
}

/// `runtimeConfig.ips`: a list of strings, each an address with or without
/// a prefix length; anything else is code 7 naming the entry.
fn runtime_ips(value: Option<&Value>) -> CniResult<Vec<IpAddr>> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            let msg = format!("invalid config: runtimeConfig.ips must be a list, not {other}");
            return Err(refused(msg));
        }
    };
    let mut ips = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let text = item.as_str();
        let address = text.and_then(args::parse_ip).ok_or_else(|| {
            let shown = text.map_or_else(|| item.to_string(), String::from);
            let msg =
                format!("invalid config: runtimeConfig.ips[{i}] {shown:?} must be an IPv6 address");
            refused(msg)
        })?;
        ips.push(address);
    }
    Ok(ips)
}

/// The one IPv6 address asked for by `runtimeConfig.ips` and `IP=`
/// together, inside the node's /64 and not the node's own; None when none
/// was asked for. Any refusal is code 7 and names the address.
pub fn requested(env: &Env, conf: &NetConf, node: &Node) -> CniResult<Option<Ipv6Addr>> {
    let mut wanted: Vec<(Ipv6Addr, &str)> = Vec::new();
    let from_config = runtime_ips(conf.runtime_ips.as_ref())?;
    let from_args = args::requested_ips(&env.args)?;
    let asked = from_config
        .iter()
        .map(|ip| (ip, "runtimeConfig.ips"))
        .chain(from_args.iter().map(|ip| (ip, "CNI_ARGS IP")));
    for (ip, source) in asked {
        match ip {
            IpAddr::V4(v4) => {
                return Err(refused(format!(
                    "requested IPv4 address {v4} ({source}): mycelium-cni gives pods IPv6 addresses from the node's Mycelium /64 only (the IPv4 address of egress nat is node-local and not requestable); ask for an IPv6 address or none"
                )));
            }
            IpAddr::V6(v6) if wanted.iter().all(|(w, _)| w != v6) => wanted.push((*v6, source)),
            IpAddr::V6(_) => {}
        }
    }
    let Some(&(address, source)) = wanted.first() else {
        return Ok(None);
    };
    let subnet = naming::prefix_text(node.address);
    if let Some((other, _)) = wanted.get(1) {
        return Err(refused(format!(
            "more than one IPv6 address requested ({address}, {other}): a pod gets one address from {subnet}"
        )));
    }
    if !node.owns(address) {
        return Err(refused(format!(
            "requested address {address} ({source}) is outside this node's /64 {subnet}"
        )));
    }
    if address == node.address {
        return Err(refused(format!(
            "requested address {address} ({source}) is the node's own Mycelium address"
        )));
    }
    Ok(Some(address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::env::Command;

    const NODE: &str = "5fd:a395:1a8d:501d:f650:6887:2bd4:ee49";

    fn node() -> Node {
        Node {
            mtu: 1400,
            address: NODE.parse().unwrap(),
        }
    }

    fn env(args: &str) -> Env {
        Env {
            command: Command::Add,
            container_id: "c1".into(),
            netns: "/var/run/netns/x".into(),
            ifname: "eth0".into(),
            args: args.into(),
        }
    }

    fn conf(ips: &str) -> NetConf {
        let text =
            format!(r#"{{"cniVersion":"1.0.0","name":"n","runtimeConfig":{{"ips":[{ips}]}}}}"#);
        NetConf::parse(text.as_bytes()).unwrap()
    }

    fn asked(args: &str, ips: &str) -> CniResult<Option<Ipv6Addr>> {
        requested(&env(args), &conf(ips), &node())
    }

    #[test]
    fn either_source_gives_the_address() {
        let wanted: Ipv6Addr = "5fd:a395:1a8d:501d::10".parse().unwrap();
        assert_eq!(
            asked("IP=5fd:a395:1a8d:501d::10", "").unwrap(),
            Some(wanted)
        );
        assert_eq!(
            asked("", r#""5fd:a395:1a8d:501d::10/64""#).unwrap(),
            Some(wanted)
        );
        let both = asked("IP=5fd:a395:1a8d:501d::10", r#""5fd:a395:1a8d:501d::10""#);
        assert_eq!(both.unwrap(), Some(wanted));
        assert_eq!(asked("IgnoreUnknown=1", "").unwrap(), None);
    }

    #[test]
    fn refusals_are_code_7_and_name_the_address() {
        for (args, ips, says) in [
            (
                "",
                r#""4aa:1::10""#,
                "4aa:1::10 (runtimeConfig.ips) is outside this node's /64 5fd:a395:1a8d:501d::/64",
            ),
            (
                &format!("IP={NODE}")[..],
                "",
                "is the node's own Mycelium address",
            ),
            (
                "IP=10.0.0.5",
                "",
                "requested IPv4 address 10.0.0.5 (CNI_ARGS IP): mycelium-cni gives pods IPv6 addresses",
            ),
            (
                "",
                r#""5fd:a395:1a8d:501d::1","5fd:a395:1a8d:501d::2""#,
                "more than one IPv6 address requested",
            ),
        ] {
            let error = asked(args, ips).unwrap_err();
            assert_eq!(error.code, INVALID_CONFIG, "{says}");
            assert!(error.msg.contains(says), "{}", error.msg);
        }
        assert_eq!(
            asked("IP=x", "").unwrap_err().code,
            crate::cni::error::INVALID_ENV
        );
    }

    #[test]
    fn runtime_config_ips_must_be_a_list_of_addresses() {
        for (ips, says) in [
            (
                r#"["5fd::1","nope"]"#,
                r#"runtimeConfig.ips[1] "nope" must be an IPv6 address"#,
            ),
            ("[7]", r#"runtimeConfig.ips[0] "7" must be"#),
            (r#""5fd::1""#, "runtimeConfig.ips must be a list"),
        ] {
            let text =
                format!(r#"{{"cniVersion":"1.0.0","name":"n","runtimeConfig":{{"ips":{ips}}}}}"#);
            let conf = NetConf::parse(text.as_bytes()).expect("DEL must still parse it");
            let error = requested(&env(""), &conf, &node()).unwrap_err();
            assert_eq!(error.code, INVALID_CONFIG, "{ips}");
            assert!(error.msg.contains(says), "{}", error.msg);
        }
        let none = r#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"portMappings":[]}}"#;
        let conf = NetConf::parse(none.as_bytes()).unwrap();
        assert_eq!(requested(&env(""), &conf, &node()).unwrap(), None);
    }

    #[test]
    fn candidates_are_the_request_or_the_derived_ones() {
        let id = AttachmentId::new("n", "c1", "eth0");
        let derived = Candidates::for_attachment(&env(""), &conf(""), &node(), &id).unwrap();
        assert!(!derived.requested);
        assert_eq!(derived.addresses.len(), ADDRESS_ATTEMPTS as usize);
        assert_eq!(derived.exhausted().code, NO_FREE_ADDRESS);
        let asked = env("IP=5fd:a395:1a8d:501d::10");
        let requested = Candidates::for_attachment(&asked, &conf(""), &node(), &id).unwrap();
        assert_eq!(
            requested.addresses,
            ["5fd:a395:1a8d:501d::10".parse::<Ipv6Addr>().unwrap()]
        );
        let taken = requested.exhausted();
        assert_eq!(taken.code, ADDRESS_TAKEN);
        assert!(
            taken
                .msg
                .contains("5fd:a395:1a8d:501d::10 is already in use"),
            "{}",
            taken.msg
        );
    }
}
