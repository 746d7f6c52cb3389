//! Results: what ADD prints, shaped for the config's spec version, appended
//! to a chained `prevResult`; and the typed view of `prevResult` CHECK reads.

use super::error::{CniError, CniResult, INVALID_CONFIG};
use super::json::Fields;
use super::version;
use ipnetwork::Ipv6Network;
use serde_json::{Map, Value, json};

/// One interface of the result.
pub struct Interface<'a> {
    pub name: &'a str,
    pub mac: &'a [u8],
    pub mtu: u32,
    /// The netns path for the pod side, None for the host side.
    pub sandbox: Option<&'a str>,
}

/// What ADD made, in the terms of a CNI result.
pub struct Attachment<'a> {
    pub host: Interface<'a>,
    pub pod: Interface<'a>,
    /// "address/prefix" of the pod.
    pub address: String,
    pub gateway: std::net::Ipv6Addr,
    /// Destinations routed via `gateway`.
    pub routes: &'a [Ipv6Network],
}

pub fn format_mac(mac: &[u8]) -> String {
    let mut text = String::with_capacity(mac.len() * 3);
    for (i, byte) in mac.iter().enumerate() {
        if i > 0 {
            text.push(':');
        }
        for nibble in [byte >> 4, byte & 15] {
            text.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    text
}

fn interface_json(interface: &Interface, cni_version: &str) -> Value {
    let mut object = Map::new();
    object.insert("name".into(), interface.name.into());
    object.insert("mac".into(), format_mac(interface.mac).into());
    if version::at_least(cni_version, "1.1.0") {
        object.insert("mtu".into(), interface.mtu.into());
    }
    if let Some(sandbox) = interface.sandbox {
        object.insert("sandbox".into(), sandbox.into());
    }
    Value::Object(object)
}

/// The lists of a result that ADD appends to.
const APPENDED: [&str; 3] = ["interfaces", "ips", "routes"];

fn not_a_list(key: &str) -> CniError {
    CniError::new(
        INVALID_CONFIG,
        format!("invalid prevResult: {key} is not a list"),
    )
}

/// The list `key` of the result, made empty when absent or null.
fn list<'a>(result: &'a mut Map<String, Value>, key: &str) -> CniResult<&'a mut Vec<Value>> {
    let slot = result.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(items) => Ok(items),
        _ => Err(not_a_list(key)),
    }
}

/// Whether ADD can append to `prev`: an object whose interfaces, ips and
/// routes, where present, are lists. The dispatcher checks this before ADD
/// creates anything; `add_result` would otherwise find out only afterwards.
pub fn check_chainable(prev: Option<&Value>) -> CniResult<()> {
    let object = match prev {
        None => return Ok(()),
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(CniError::new(
                INVALID_CONFIG,
                "invalid prevResult: not an object",
            ));
        }
    };
    let wrong = APPENDED.into_iter().find(|key| {
        object
            .get(*key)
            .is_some_and(|v| !v.is_null() && !v.is_array())
    });
    match wrong {
        Some(key) => Err(not_a_list(key)),
        None => Ok(()),
    }
}

/// The ADD result: `prev` (if chained) with our interfaces, IP and routes appended.
pub fn add_result(
    cni_version: &str,
    prev: Option<&Value>,
    attachment: &Attachment,
) -> CniResult<String> {
    check_chainable(prev)?;
    let mut result = match prev {
        Some(Value::Object(object)) => object.clone(),
        _ => Map::new(),
    };
    result.insert("cniVersion".into(), cni_version.into());
    let interfaces = list(&mut result, "interfaces")?;
    interfaces.push(interface_json(&attachment.host, cni_version));
    interfaces.push(interface_json(&attachment.pod, cni_version));
    let pod_index = interfaces.len() - 1;
    let gateway = attachment.gateway.to_string();
    let mut ip = json!({
        "address": attachment.address,
        "gateway": gateway,
        "interface": pod_index,
    });
    if let (false, Value::Object(ip)) = (version::at_least(cni_version, "1.0.0"), &mut ip) {
        ip.insert("version".into(), "6".into());
    }
    list(&mut result, "ips")?.push(ip);
    let routes = list(&mut result, "routes")?;
    for dst in attachment.routes {
        routes.push(json!({ "dst": dst.to_string(), "gw": gateway }));
    }
    if !result.contains_key("dns") {
        result.insert("dns".into(), json!({}));
    }
    Ok(Value::Object(result).to_string())
}

/// What CHECK reads of `prevResult`.
pub struct PrevResult {
    pub interfaces: Vec<PrevInterface>,
    pub ips: Vec<PrevIp>,
}

pub struct PrevInterface {
    pub name: String,
    pub sandbox: String,
}

pub struct PrevIp {
    pub address: String,
    pub interface: Option<usize>,
}

impl PrevResult {
    pub fn parse(value: &Value) -> CniResult<PrevResult> {
        let fields = Fields::of(value, "prevResult")?;
        let mut interfaces = Vec::new();
        for interface in fields.objects("interfaces")? {
            interfaces.push(PrevInterface {
                name: interface.required_str("name")?.into(),
                sandbox: interface.str("sandbox")?.unwrap_or_default().into(),
            });
        }
        let mut ips = Vec::new();
        for ip in fields.objects("ips")? {
            ips.push(PrevIp {
                address: ip.required_str("address")?.into(),
                interface: ip.u32("interface")?.map(|index| index as usize),
            });
        }
        Ok(PrevResult { interfaces, ips })
    }

    /// Index of the interface named `name` inside `sandbox`.
    pub fn pod_interface(&self, name: &str, sandbox: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == name && i.sandbox == sandbox)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(routes: &[Ipv6Network]) -> Attachment<'_> {
        Attachment {
            host: Interface {
                name: "myc0123456789ab",
                mac: &[0x0a, 0x1b, 0, 0, 0xff, 1],
                mtu: 1400,
                sandbox: None,
            },
            pod: Interface {
                name: "eth0",
                mac: &[2, 0, 0, 0, 0, 2],
                mtu: 1400,
                sandbox: Some("/var/run/netns/p"),
            },
            address: "5fd:a395:1a8d:501d:ff0f::1/128".into(),
            gateway: std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            routes,
        }
    }

    fn overlay() -> [Ipv6Network; 1] {
        ["400::/7".parse().unwrap()]
    }

    fn parsed(version: &str, prev: Option<&Value>) -> Value {
        let routes = overlay();
        serde_json::from_str(&add_result(version, prev, &attachment(&routes)).unwrap()).unwrap()
    }

    #[test]
    fn shape_1_0_0() {
        let expected = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "myc0123456789ab", "mac": "0a:1b:00:00:ff:01"},
                {"name": "eth0", "mac": "02:00:00:00:00:02", "sandbox": "/var/run/netns/p"}
            ],
            "ips": [{"address": "5fd:a395:1a8d:501d:ff0f::1/128", "gateway": "fe80::1", "interface": 1}],
            "routes": [{"dst": "400::/7", "gw": "fe80::1"}],
            "dns": {}
        });
        assert_eq!(parsed("1.0.0", None), expected);
    }

    #[test]
    fn old_versions_carry_ip_version_and_1_1_0_carries_mtu() {
        for version in ["0.3.0", "0.3.1", "0.4.0"] {
            let result = parsed(version, None);
            assert_eq!(result["ips"][0]["version"], "6", "{version}");
            assert!(result["interfaces"][1].get("mtu").is_none());
        }
        let result = parsed("1.1.0", None);
        assert!(result["ips"][0].get("version").is_none());
        assert_eq!(result["interfaces"][0]["mtu"], 1400);
        assert_eq!(result["interfaces"][1]["mtu"], 1400);
    }

    #[test]
    fn every_route_goes_via_the_gateway() {
        let routes: Vec<Ipv6Network> = ["400::/7", "fd00:10:96::/112", "::/0"]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect();
        let result: Value =
            serde_json::from_str(&add_result("1.0.0", None, &attachment(&routes)).unwrap())
                .unwrap();
        let expected = json!([{"dst": "400::/7", "gw": "fe80::1"}, {"dst": "fd00:10:96::/112", "gw": "fe80::1"}, {"dst": "::/0", "gw": "fe80::1"}]);
        assert_eq!(result["routes"], expected);
    }

    #[test]
    fn chains_onto_prev_result() {
        let prev = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": "/var/run/netns/p"}],
            "ips": [{"address": "127.0.0.1/8", "interface": 0}],
            "dns": {"nameservers": ["fd00::10"]}
        });
        let result = parsed("1.0.0", Some(&prev));
        assert_eq!(result["interfaces"].as_array().unwrap().len(), 3);
        assert_eq!(result["interfaces"][0]["name"], "lo");
        assert_eq!(result["ips"][0]["address"], "127.0.0.1/8");
        assert_eq!(result["ips"][1]["interface"], 2);
        assert_eq!(result["dns"]["nameservers"][0], "fd00::10");
    }

    #[test]
    fn rejects_malformed_prev_result() {
        let bad = [
            (json!([1]), "invalid prevResult: not an object"),
            (json!("x"), "invalid prevResult: not an object"),
            (
                json!({"interfaces": 5}),
                "invalid prevResult: interfaces is not a list",
            ),
            (json!({"ips": {}}), "invalid prevResult: ips is not a list"),
            (
                json!({"routes": "r"}),
                "invalid prevResult: routes is not a list",
            ),
        ];
        for (prev, msg) in &bad {
            let routes = overlay();
            let error = add_result("1.0.0", Some(prev), &attachment(&routes))
                .err()
                .unwrap();
            assert_eq!((error.code, error.msg.as_str()), (INVALID_CONFIG, *msg));
            assert_eq!(check_chainable(Some(prev)).unwrap_err(), error);
        }
        let null_lists = json!({"interfaces": null, "ips": null, "routes": null});
        assert!(check_chainable(Some(&null_lists)).is_ok());
        assert_eq!(parsed("1.0.0", Some(&null_lists))["ips"][0]["interface"], 1);
    }

    #[test]
    fn prev_result_view_finds_pod_interface() {
        let prev = json!({"interfaces": [{"name": "h"}, {"name": "eth0", "sandbox": "/n"}],
                          "ips": [{"address": "5fd::1/128", "interface": 1}], "routes": [{"dst": "400::/7"}]});
        let view = PrevResult::parse(&prev).unwrap();
        assert_eq!(view.pod_interface("eth0", "/n"), Some(1));
        assert_eq!(view.pod_interface("eth0", "/other"), None);
        assert!(PrevResult::parse(&json!({"ips": "x"})).is_err());
    }
}
