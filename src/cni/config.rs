//! The network configuration read from stdin.

use super::env::{check_interface_name, is_valid_container_id};
use super::error::{CniError, CniResult, DECODE_FAILURE, INVALID_CONFIG};
use super::logfile::{Level, LogFile};
use super::version;
use ipnetwork::Ipv6Network;
use serde::Deserialize;
use serde_json::Value;

pub const DEFAULT_INTERFACE: &str = "mycelium";
/// IPv6 needs at least 1280; a veth takes at most 65535.
const MTU_RANGE: std::ops::RangeInclusive<u32> = 1280..=65535;

#[derive(Deserialize)]
struct RawConf {
    #[serde(rename = "cniVersion")]
    cni_version: String,
    name: String,
    #[serde(rename = "myceliumInterface")]
    mycelium_interface: Option<String>,
    mtu: Option<u32>,
    #[serde(rename = "podInterface")]
    pod_interface: Option<String>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(rename = "defaultRoute", default)]
    default_route: bool,
    #[serde(rename = "logFile")]
    log_file: Option<String>,
    #[serde(rename = "logLevel")]
    log_level: Option<String>,
    #[serde(rename = "prevResult")]
    prev_result: Option<Value>,
    args: Option<Value>,
}

#[derive(Deserialize)]
struct RawRoute {
    dst: String,
}

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
    /// `logFile` with `logLevel` (default info).
    pub log: Option<LogFile>,
    pub prev_result: Option<Value>,
    /// `args`, checked against CNI_ARGS conventions.
    pub args: Option<Value>,
}

impl NetConf {
    pub fn parse(stdin: &[u8]) -> CniResult<NetConf> {
        let raw: RawConf = serde_json::from_slice(stdin).map_err(decode_error)?;
        version::check_supported(&raw.cni_version)?;
        if !is_valid_container_id(&raw.name) {
            return Err(invalid(
                "name",
                &raw.name,
                "must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
            ));
        }
        let mycelium_interface = raw
            .mycelium_interface
            .unwrap_or_else(|| DEFAULT_INTERFACE.into());
        if let Err(rule) = check_interface_name(&mycelium_interface) {
            return Err(invalid("myceliumInterface", &mycelium_interface, rule));
        }
        if let Some(name) = &raw.pod_interface {
            if let Err(rule) = check_interface_name(name) {
                return Err(invalid("podInterface", name, rule));
            }
        }
        if let Some(mtu) = raw.mtu.filter(|mtu| !MTU_RANGE.contains(mtu)) {
            return Err(invalid("mtu", &mtu.to_string(), "must be 1280 to 65535"));
        }
        let routes = parse_routes(&raw.routes)?;
        let level = match raw.log_level.as_deref() {
            None => Level::Info,
            Some(text) => Level::parse(text).ok_or_else(|| {
                invalid(
                    "logLevel",
                    text,
                    "must be panic, error, info, verbose or debug",
                )
            })?,
        };
        let log = raw
            .log_file
            .filter(|path| !path.is_empty())
            .map(|path| LogFile { path, level });
        Ok(NetConf {
            cni_version: raw.cni_version,
            name: raw.name,
            mycelium_interface,
            mtu: raw.mtu,
            pod_interface: raw.pod_interface,
            routes,
            default_route: raw.default_route,
            log,
            prev_result: raw.prev_result.filter(|value| !value.is_null()),
            args: raw.args,
        })
    }
}

/// IPv6 CIDRs only (the pod has no IPv4 on this interface); host bits are
/// cleared, as the kernel would.
fn parse_routes(raw: &[RawRoute]) -> CniResult<Vec<Ipv6Network>> {
    let mut routes = Vec::with_capacity(raw.len());
    for (i, route) in raw.iter().enumerate() {
        let field = format!("routes[{i}].dst");
        let network: Ipv6Network = route.dst.parse().map_err(|_| {
            invalid(
                &field,
                &route.dst,
                "must be an IPv6 CIDR such as fd00:10:96::/112",
            )
        })?;
        let network = Ipv6Network::new(network.network(), network.prefix())
            .map_err(|_| invalid(&field, &route.dst, "has an invalid prefix length"))?;
        routes.push(network);
    }
    Ok(routes)
}

fn invalid(field: &str, value: &str, rule: &str) -> CniError {
    CniError::new(
        INVALID_CONFIG,
        format!("invalid config: {field} {value:?} {rule}"),
    )
}

fn decode_error(error: serde_json::Error) -> CniError {
    if error.is_data() {
        CniError::new(INVALID_CONFIG, format!("invalid config: {error}"))
    } else {
        CniError::new(DECODE_FAILURE, format!("cannot decode config: {error}"))
    }
}

/// One entry of GC's `cni.dev/valid-attachments`.
#[derive(Deserialize)]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

#[derive(Deserialize)]
struct GcConf {
    #[serde(rename = "cni.dev/valid-attachments")]
    valid: Option<Vec<ValidAttachment>>,
    #[serde(rename = "cni.dev/attachments")]
    older: Option<Vec<ValidAttachment>>,
}

/// GC's list of attachments to keep; older runtimes send
/// `cni.dev/attachments`. Without either, every attachment would look
/// stale, so the list is required.
pub fn valid_attachments(stdin: &[u8]) -> CniResult<Vec<ValidAttachment>> {
    let gc: GcConf = serde_json::from_slice(stdin).map_err(decode_error)?;
    gc.valid.or(gc.older).ok_or_else(|| {
        CniError::new(
            INVALID_CONFIG,
            "invalid config: GC needs cni.dev/valid-attachments",
        )
    })
}

/// Reads just `cniVersion`, for shaping an error when the rest is invalid.
pub fn peek_version(stdin: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(rename = "cniVersion")]
        cni_version: String,
    }
    let peek: Peek = serde_json::from_slice(stdin).ok()?;
    version::check_supported(&peek.cni_version).ok()?;
    Some(peek.cni_version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::error::INCOMPATIBLE_VERSION;

    fn parse(text: &str) -> CniResult<NetConf> {
        NetConf::parse(text.as_bytes())
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let conf = parse(r#"{"cniVersion":"1.0.0","name":"myc","type":"mycelium-cni"}"#).unwrap();
        assert_eq!(conf.mycelium_interface, "mycelium");
        assert_eq!(conf.mtu, None);
        assert_eq!(conf.prev_result, None);
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
            (r#"{"cniVersion":"1.0.0","name":"n","mtu":"big"}"#, "big"),
            (
                r#"{"cniVersion":"1.0.0","name":"n","myceliumInterface":7}"#,
                "7",
            ),
            (r#"{"cniVersion":"1.0.0","name":"n","mtu":100}"#, "mtu"),
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
        let list = valid_attachments(new).unwrap();
        assert_eq!(
            (list[0].container_id.as_str(), list[0].ifname.as_str()),
            ("c1", "eth0")
        );
        assert!(
            valid_attachments(br#"{"cni.dev/attachments":[]}"#)
                .unwrap()
                .is_empty()
        );
        assert_eq!(valid_attachments(b"{}").err().unwrap().code, INVALID_CONFIG);
        let bad = br#"{"cni.dev/valid-attachments":[{"containerID":1}]}"#;
        assert_eq!(valid_attachments(bad).err().unwrap().code, INVALID_CONFIG);
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
}
