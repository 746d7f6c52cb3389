//! The network configuration read from stdin.

use super::egress::{self, Egress};
use super::env::{NAME_RULE, check_interface_name, matches_name_rule};
use super::error::{CniError, CniResult, DECODE_FAILURE, INVALID_CONFIG};
use super::json::Fields;
use super::logfile::{Level, LogFile};
use super::version;
use ipnetwork::Ipv6Network;
use serde_json::{Map, Value};

pub const DEFAULT_INTERFACE: &str = "mycelium";
/// The longest network name that every object derived from it can hold.
/// The tightest is the overlay ingress chain `overlay-in-NAME`: nf_tables
/// names are at most NFT_NAME_MAXLEN 256 bytes with their NUL, so 255 - 11.
/// The host veth alias `NAME/ID/IFNAME` (at most 254 bytes) allows 250 with
/// the shortest ID and ifname; longer ones are refused at ADD. Tied to the
/// derived names by plugin::naming's tests.
pub const MAX_NAME_LEN: usize = 244;
/// IPv6 needs at least 1280; a veth takes at most 65535.
const MTU_RANGE: std::ops::RangeInclusive<u64> = 1280..=65535;

#[cfg_attr(test, derive(Debug))]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    pub mycelium_interface: String,
    /// None: take the Mycelium interface's MTU.
    pub mtu: Option<u32>,
    /// The pod-side interface name when it is not CNI_IFNAME (secondary network).
    pub pod_interface: Option<String>,
    /// `routes[].dst`: more destinations via the host, e.g. the service CIDR.
    pub routes: Vec<Ipv6Network>,
    /// `defaultRoute`: also `::/0` via the host.
    pub default_route: bool,
    /// `egress` with `ipv4Pool` (default nat): what pods reach beyond the overlay.
    pub egress: Egress,
    /// `sourceFilter` (default true): keep the nf_tables source filter.
    pub source_filter: bool,
    /// `overlayIngress` (default open): what may reach the pods from the
    /// Mycelium interface.
    pub overlay_ingress: OverlayIngress,
    /// `logFile` with `logLevel` (default info).
    pub log: Option<LogFile>,
    pub prev_result: Option<Value>,
    /// `args`, checked against CNI_ARGS conventions.
    pub args: Option<Value>,
    /// `runtimeConfig.ips` (capability `ips`): addresses the runtime asks
    /// for, as given; only ADD reads them (a bad one must not stop DEL).
    pub runtime_ips: Option<Value>,
}

impl NetConf {
    #[cfg(test)]
    pub fn parse(stdin: &[u8]) -> CniResult<NetConf> {
        NetConf::from_value(&parse_json(stdin)?)
    }

    pub fn from_value(value: &Value) -> CniResult<NetConf> {
        let fields = Fields::of(value, "")?;
        let cni_version = fields.required_str("cniVersion")?;
        version::check_supported(cni_version)?;
        let name = fields.required_str("name")?;
        if !matches_name_rule(name) {
            return Err(invalid("name", name, NAME_RULE));
        }
        if name.len() > MAX_NAME_LEN {
            let msg = format!(
                "invalid config: name is {} bytes long; it must be at most {MAX_NAME_LEN}",
                name.len()
            );
            return Err(CniError::new(INVALID_CONFIG, msg));
        }
        let mycelium_interface = fields
            .str("myceliumInterface")?
            .unwrap_or(DEFAULT_INTERFACE);
        if let Err(rule) = check_interface_name(mycelium_interface) {
            return Err(invalid("myceliumInterface", mycelium_interface, rule));
        }
        let pod_interface = fields.str("podInterface")?;
        if let Some(Err(rule)) = pod_interface.map(check_interface_name) {
            return Err(invalid(
                "podInterface",
                pod_interface.unwrap_or_default(),
                rule,
            ));
        }
        // Any number outside the range, whole or not (1400.5, -1), is named
        // with the range; anything else is not a number at all.
        if let Some(Value::Number(number)) = fields.get("mtu") {
            if number.as_u64().is_none_or(|n| !MTU_RANGE.contains(&n)) {
                return Err(invalid("mtu", &number.to_string(), "must be 1280 to 65535"));
            }
        }
        let mtu = fields.u32("mtu")?;
        let level = match fields.str("logLevel")? {
            None => Level::Info,
            Some(text) => Level::parse(text).ok_or_else(|| {
                invalid(
                    "logLevel",
                    text,
                    "must be panic, error, info, verbose or debug",
                )
            })?,
        };
        let log = fields.str("logFile")?.filter(|path| !path.is_empty());
        Ok(NetConf {
            cni_version: cni_version.into(),
            name: name.into(),
            mycelium_interface: mycelium_interface.into(),
            mtu,
            pod_interface: pod_interface.map(String::from),
            routes: parse_routes(&fields)?,
            default_route: fields.bool("defaultRoute")?.unwrap_or(false),
            egress: egress::parse(&fields)?,
            source_filter: fields.bool("sourceFilter")?.unwrap_or(true),
            overlay_ingress: parse_overlay_ingress(fields.get("overlayIngress"))?,
            log: log.map(|path| LogFile {
                path: path.into(),
                level,
            }),
            prev_result: fields.get("prevResult").cloned(),
            args: fields.get("args").cloned(),
            runtime_ips: fields
                .get("runtimeConfig")
                .and_then(|runtime| runtime.get("ips"))
                .cloned(),
        })
    }
}

/// `overlayIngress`: `"open"` (anyone on the overlay), `"replies"` (only
/// traffic of connections the pods started), or a list of IPv6 prefixes
/// also allowed to start connections.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
pub enum OverlayIngress {
    Open,
    Replies,
    RepliesAnd(Vec<Ipv6Network>),
}

impl std::fmt::Display for OverlayIngress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverlayIngress::Open => f.write_str("open"),
            OverlayIngress::Replies => f.write_str("replies"),
            OverlayIngress::RepliesAnd(prefixes) => {
                f.write_str("replies, and from")?;
                for prefix in prefixes {
                    write!(f, " {prefix}")?;
                }
                Ok(())
            }
        }
    }
}

fn parse_overlay_ingress(value: Option<&Value>) -> CniResult<OverlayIngress> {
    const RULE: &str = "must be \"open\", \"replies\" or a list of IPv6 CIDRs";
    let items = match value {
        None => return Ok(OverlayIngress::Open),
        Some(Value::String(text)) if text == "open" => return Ok(OverlayIngress::Open),
        Some(Value::String(text)) if text == "replies" => return Ok(OverlayIngress::Replies),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(invalid("overlayIngress", &shown(other), RULE)),
    };
    let mut prefixes = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("overlayIngress[{i}]");
        let text = item.as_str().unwrap_or_default();
        let prefix = parse_ipv6_cidr(text).ok_or_else(|| {
            invalid(
                &field,
                &shown(item),
                "must be an IPv6 CIDR such as 4a1:b2c3:d4e5:f607::/64",
            )
        })?;
        prefixes.push(prefix);
    }
    Ok(OverlayIngress::RepliesAnd(prefixes))
}

/// An IPv6 CIDR with its host bits cleared, as the kernel would.
fn parse_ipv6_cidr(text: &str) -> Option<Ipv6Network> {
    let network: Ipv6Network = text.parse().ok()?;
    Ipv6Network::new(network.network(), network.prefix()).ok()
}

/// The config a runtime hands one plugin of a conflist: that plugin's entry,
/// plus the list's `cniVersion` and `name`.
pub fn conflist_entry(list: &Value, entry: &Map<String, Value>) -> Value {
    let mut conf = entry.clone();
    for key in ["cniVersion", "name"] {
        conf.insert(key.into(), list.get(key).cloned().unwrap_or(Value::Null));
    }
    Value::Object(conf)
}

/// Syntax errors are code 6 (decode failure).
pub fn parse_json(stdin: &[u8]) -> CniResult<Value> {
    serde_json::from_slice(stdin)
        .map_err(|error| CniError::new(DECODE_FAILURE, format!("cannot decode config: {error}")))
}

/// IPv6 CIDRs only (the pod has no IPv4 on this interface); host bits are
/// cleared, as the kernel would.
fn parse_routes(fields: &Fields) -> CniResult<Vec<Ipv6Network>> {
    let mut routes = Vec::new();
    for (i, route) in fields.objects("routes")?.iter().enumerate() {
        let dst = route.required_str("dst")?;
        let field = format!("routes[{i}].dst");
        let network = parse_ipv6_cidr(dst)
            .ok_or_else(|| invalid(&field, dst, "must be an IPv6 CIDR such as fd00:10:96::/112"))?;
        routes.push(network);
    }
    Ok(routes)
}

/// A value as `invalid` quotes it: a string's text, anything else as JSON
/// (a string's JSON would be quoted twice).
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn invalid(field: &str, value: &str, rule: &str) -> CniError {
    CniError::new(
        INVALID_CONFIG,
        format!("invalid config: {field} {value:?} {rule}"),
    )
}

/// One entry of GC's `cni.dev/valid-attachments`.
pub struct ValidAttachment {
    pub container_id: String,
    pub ifname: String,
}

/// GC's list of attachments to keep; older runtimes send
/// `cni.dev/attachments`. Without either, every attachment would look
/// stale, so the list is required.
pub fn valid_attachments(value: &Value) -> CniResult<Vec<ValidAttachment>> {
    let fields = Fields::of(value, "")?;
    let key = ["cni.dev/valid-attachments", "cni.dev/attachments"]
        .into_iter()
        .find(|key| fields.get(key).is_some())
        .ok_or_else(|| {
            CniError::new(
                INVALID_CONFIG,
                "invalid config: GC needs cni.dev/valid-attachments",
            )
        })?;
    let mut list = Vec::new();
    for entry in fields.objects(key)? {
        list.push(ValidAttachment {
            container_id: entry.required_str("containerID")?.into(),
            ifname: entry.required_str("ifname")?.into(),
        });
    }
    Ok(list)
}

/// Reads just `cniVersion`, for shaping an error when the rest is invalid.
pub fn peek_version(stdin: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(stdin).ok()?;
    let version = value.get("cniVersion")?.as_str()?;
    version::check_supported(version).ok()?;
    Some(version.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::error::INCOMPATIBLE_VERSION;

    fn parse(text: &str) -> CniResult<NetConf> {
        NetConf::parse(text.as_bytes())
    }

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let conf = parse(r#"{"cniVersion":"1.0.0","name":"myc","type":"mycelium-cni"}"#).unwrap();
        assert_eq!(conf.mycelium_interface, "mycelium");
        assert_eq!(conf.mtu, None);
        assert_eq!(conf.prev_result, None);
        assert!(conf.source_filter);
        let off = parse(r#"{"cniVersion":"1.0.0","name":"m","sourceFilter":false}"#).unwrap();
        assert!(!off.source_filter);
        let error = parse(r#"{"cniVersion":"1.0.0","name":"m","sourceFilter":"no"}"#).unwrap_err();
        assert!(error.msg.contains("sourceFilter"), "{}", error.msg);
        assert_eq!(conf.overlay_ingress, OverlayIngress::Open);
    }

    #[test]
    fn reads_every_key_and_ignores_unknown_ones() {
        let text = r#"{"cniVersion":"0.4.0","name":"n1","type":"mycelium-cni","myceliumInterface":"myc7",
            "mtu":1400,"podInterface":"myc0","somethingElse":{"x":1},"runtimeConfig":{},"args":{},"prevResult":{"interfaces":[]}}"#;
        let conf = parse(text).unwrap();
        assert_eq!(
            (conf.cni_version.as_str(), conf.name.as_str()),
            ("0.4.0", "n1")
        );
        assert_eq!(
            (conf.mycelium_interface.as_str(), conf.mtu),
            ("myc7", Some(1400))
        );
        assert!(conf.prev_result.is_some());
        assert_eq!(conf.pod_interface.as_deref(), Some("myc0"));
    }

    #[test]
    fn routes_are_ipv6_cidrs_with_host_bits_cleared() {
        let text = r#"{"cniVersion":"1.0.0","name":"n","defaultRoute":true,
            "routes":[{"dst":"fd00:10:96::/112"},{"dst":"fd00:10:96::1/112"}]}"#;
        let conf = parse(text).unwrap();
        let routes: Vec<String> = conf.routes.iter().map(|r| r.to_string()).collect();
        assert_eq!(routes, ["fd00:10:96::/112", "fd00:10:96::/112"]);
        assert!(conf.default_route);
        assert!(
            !parse(r#"{"cniVersion":"1.0.0","name":"n"}"#)
                .unwrap()
                .default_route
        );
    }

    #[test]
    fn bad_routes_name_the_entry() {
        for (dst, field) in [
            ("10.43.0.0/16", "routes[1].dst"),
            ("fd00::/129", "routes[1].dst"),
            ("nope", "routes[1].dst"),
        ] {
            let text = format!(
                r#"{{"cniVersion":"1.0.0","name":"n","routes":[{{"dst":"fd00::/8"}},{{"dst":"{dst}"}}]}}"#
            );
            let error = parse(&text).unwrap_err();
            assert_eq!(error.code, INVALID_CONFIG, "{dst}");
            assert!(
                error.msg.contains(field) && error.msg.contains(dst),
                "{}",
                error.msg
            );
        }
        let error =
            parse(r#"{"cniVersion":"1.0.0","name":"n","routes":[{"gw":"fe80::1"}]}"#).unwrap_err();
        assert!(error.msg.contains("dst"), "{}", error.msg);
        let error = parse(r#"{"cniVersion":"1.0.0","name":"n","defaultRoute":"yes"}"#).unwrap_err();
        assert_eq!(error.code, INVALID_CONFIG);
    }

    #[test]
    fn log_keys_as_multus_names_them() {
        let conf = parse(
            r#"{"cniVersion":"1.0.0","name":"n","logFile":"/var/log/m.log","logLevel":"error"}"#,
        )
        .unwrap();
        let log = conf.log.unwrap();
        assert_eq!(
            (log.path.as_str(), log.level),
            ("/var/log/m.log", Level::Error)
        );
        let conf = parse(r#"{"cniVersion":"1.0.0","name":"n","logFile":"/x"}"#).unwrap();
        assert_eq!(conf.log.unwrap().level, Level::Info);
        let error = parse(r#"{"cniVersion":"1.0.0","name":"n","logFile":"/x","logLevel":"loud"}"#)
            .unwrap_err();
        assert!(error.msg.contains("logLevel"), "{}", error.msg);
    }

    #[test]
    fn conflist_entry_takes_version_and_name_from_the_list() {
        let list =
            json(br#"{"cniVersion":"0.4.0","name":"net9","plugins":[{"type":"x","mtu":1400}]}"#);
        let entry = list["plugins"][0].as_object().unwrap();
        let conf = NetConf::from_value(&conflist_entry(&list, entry)).unwrap();
        assert_eq!(
            (conf.cni_version.as_str(), conf.name.as_str()),
            ("0.4.0", "net9")
        );
        assert_eq!(conf.mtu, Some(1400));
        let unnamed = json(br#"{"cniVersion":"0.4.0"}"#);
        let error = NetConf::from_value(&conflist_entry(&unnamed, entry)).unwrap_err();
        assert!(error.msg.contains("name"), "{}", error.msg);
    }

    #[test]
    fn malformed_json_is_decode_failure() {
        for text in ["", "{", "not json", r#"{"cniVersion":"1.0.0","name":"n""#] {
            assert_eq!(parse(text).unwrap_err().code, DECODE_FAILURE, "{text:?}");
        }
    }

    #[test]
    fn wrong_types_and_missing_fields_name_the_field() {
        let cases = [
            (r#"{"name":"n"}"#, "cniVersion"),
            (r#"{"cniVersion":"1.0.0"}"#, "name"),
            (
                r#"{"cniVersion":"1.0.0","name":"n","mtu":"big"}"#,
                "mtu must be a whole number, not a string",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","myceliumInterface":7}"#,
                "myceliumInterface must be a string, not a number",
            ),
            (r#"{"cniVersion":"1.0.0","name":"n","mtu":100}"#, "mtu"),
            (
                r#"{"cniVersion":"1.0.0","name":"n","mtu":1400.5}"#,
                "invalid config: mtu \"1400.5\" must be 1280 to 65535",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","mtu":-1}"#,
                "invalid config: mtu \"-1\" must be 1280 to 65535",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","mtu":4294967296}"#,
                "invalid config: mtu \"4294967296\" must be 1280 to 65535",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","myceliumInterface":"a/b"}"#,
                "myceliumInterface",
            ),
            (r#"{"cniVersion":"1.0.0","name":"-n"}"#, "name"),
            (
                r#"{"cniVersion":"1.0.0","name":"n","podInterface":"a b"}"#,
                "podInterface",
            ),
            (r#"{"cniVersion":"1.0.0","name":""}"#, "name"),
        ];
        for (text, field) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(error.code, INVALID_CONFIG, "{text}");
            assert!(error.msg.contains(field), "{text}: {}", error.msg);
        }
    }

    #[test]
    fn network_names_are_limited_to_what_derived_names_hold() {
        let named = |length: usize| {
            let text = format!(
                r#"{{"cniVersion":"1.0.0","name":"{}"}}"#,
                "n".repeat(length)
            );
            parse(&text)
        };
        assert_eq!(named(MAX_NAME_LEN).unwrap().name.len(), MAX_NAME_LEN);
        for length in [MAX_NAME_LEN + 1, 248, 1000] {
            let error = named(length).unwrap_err();
            assert_eq!(error.code, INVALID_CONFIG);
            let msg =
                format!("invalid config: name is {length} bytes long; it must be at most 244");
            assert_eq!(error.msg, msg);
        }
    }

    #[test]
    fn unknown_version_is_code_1() {
        let error = parse(r#"{"cniVersion":"0.2.0","name":"n"}"#).unwrap_err();
        assert_eq!(error.code, INCOMPATIBLE_VERSION);
    }

    #[test]
    fn null_prev_result_is_none() {
        let conf = parse(r#"{"cniVersion":"1.0.0","name":"n","prevResult":null}"#).unwrap();
        assert_eq!(conf.prev_result, None);
    }

    #[test]
    fn gc_list_from_either_key_and_required() {
        let new = br#"{"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#;
        let list = valid_attachments(&json(new)).unwrap();
        assert_eq!(
            (list[0].container_id.as_str(), list[0].ifname.as_str()),
            ("c1", "eth0")
        );
        let older = json(br#"{"cni.dev/attachments":[]}"#);
        assert!(valid_attachments(&older).unwrap().is_empty());
        assert_eq!(
            valid_attachments(&json(b"{}")).err().unwrap().code,
            INVALID_CONFIG
        );
        let bad = json(br#"{"cni.dev/valid-attachments":[{"containerID":1}]}"#);
        let error = valid_attachments(&bad).err().unwrap();
        assert!(
            error
                .msg
                .contains("cni.dev/valid-attachments[0].containerID"),
            "{}",
            error.msg
        );
    }

    #[test]
    fn peeks_version_of_invalid_config() {
        assert_eq!(
            peek_version(br#"{"cniVersion":"0.4.0","mtu":"x"}"#).as_deref(),
            Some("0.4.0")
        );
        assert_eq!(peek_version(br#"{"cniVersion":"7"}"#), None);
        assert_eq!(peek_version(b"{"), None);
    }

    #[test]
    fn overlay_ingress_takes_open_replies_or_prefixes() {
        let with = |value: &str| {
            parse(&format!(
                r#"{{"cniVersion":"1.0.0","name":"m","overlayIngress":{value}}}"#
            ))
        };
        assert_eq!(
            with(r#""open""#).unwrap().overlay_ingress,
            OverlayIngress::Open
        );
        assert_eq!(
            with(r#""replies""#).unwrap().overlay_ingress,
            OverlayIngress::Replies
        );
        let listed = with(r#"["4a1:b2c3:d4e5:f607::1/64", "5b2::/16"]"#).unwrap();
        let prefixes = ["4a1:b2c3:d4e5:f607::/64", "5b2::/16"].map(|p| p.parse().unwrap());
        assert_eq!(
            listed.overlay_ingress,
            OverlayIngress::RepliesAnd(prefixes.to_vec())
        );
        assert_eq!(
            listed.overlay_ingress.to_string(),
            "replies, and from 4a1:b2c3:d4e5:f607::/64 5b2::/16"
        );
        let error = with(r#"["4aa::/64", "10.0.0.0/8"]"#).unwrap_err();
        assert_eq!(
            error.msg,
            "invalid config: overlayIngress[1] \"10.0.0.0/8\" must be an IPv6 CIDR such as 4a1:b2c3:d4e5:f607::/64"
        );
        let error = with(r#""closed""#).unwrap_err();
        assert!(
            error
                .msg
                .starts_with("invalid config: overlayIngress \"closed\" must"),
            "{}",
            error.msg
        );
        for (value, named) in [
            (r#""closed""#, "closed"),
            (r#"["4aa::/64", "10.0.0.0/8"]"#, "overlayIngress[1]"),
            (r#"["4aa::/64", 7]"#, "overlayIngress[1]"),
            (r#"["4aa::/200"]"#, "overlayIngress[0]"),
            ("true", "overlayIngress"),
        ] {
            let error = with(value).unwrap_err();
            assert_eq!(error.code, INVALID_CONFIG, "{value}");
            assert!(error.msg.contains(named), "{value}: {}", error.msg);
        }
    }
}
