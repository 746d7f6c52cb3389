//! CNI_ARGS (`K=V;K=V`) and the config's `args.cni`: keys this plugin does
//! not know are an error (code 2) unless `IgnoreUnknown` is set, as the
//! spec's conventions say.

use super::error::{CniError, CniResult, INVALID_ENV, UNSUPPORTED_FIELD};
use serde_json::Value;
use std::net::IpAddr;

/// Keys runtimes send: `IP` is a requested address (podman's --ip6), the
/// others need no action here.
const KNOWN: [&str; 6] = [
    "IgnoreUnknown",
    "IP",
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

fn is_true(value: &str) -> bool {
    value == "1" || value.eq_ignore_ascii_case("true")
}

fn unknown(source: &str, key: &str, value: &str) -> CniError {
    let msg =
        format!("unknown {source} key {key:?} (value {value:?}); set IgnoreUnknown=1 to ignore it");
    CniError::new(UNSUPPORTED_FIELD, msg)
}

/// Splits CNI_ARGS into pairs; a pair without `=` is an env error.
fn pairs(cni_args: &str) -> CniResult<Vec<(&str, &str)>> {
    let mut pairs = Vec::new();
    for pair in cni_args.split(';').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            CniError::new(
                INVALID_ENV,
                format!("invalid CNI_ARGS pair {pair:?}: expected KEY=VALUE"),
            )
        })?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// An address as runtimes write a requested one: bare, or with a prefix
/// length (which a pod's /128 makes moot).
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let (address, prefix_len) = match text.trim().split_once('/') {
        Some((address, len)) => (address, Some(len.parse::<u8>().ok()?)),
        None => (text.trim(), None),
    };
    let address: IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    prefix_len
        .filter(|len| *len > max)
        .map_or(Some(address), |_| None)
}

/// The addresses `IP=` asks for (comma-separated, as host-local reads it);
/// a malformed one is an env error (code 4) naming it.
pub fn requested_ips(cni_args: &str) -> CniResult<Vec<IpAddr>> {
    let mut found = Vec::new();
    for (_, value) in pairs(cni_args)?.into_iter().filter(|(k, _)| *k == "IP") {
        for item in value.split(',') {
            let address = parse_ip(item).ok_or_else(|| {
                let msg = format!("invalid CNI_ARGS IP {item:?}: expected an IPv6 address");
                CniError::new(INVALID_ENV, msg)
            })?;
            found.push(address);
        }
    }
    Ok(found)
}

pub fn check(cni_args: &str, conf_args: Option<&Value>) -> CniResult<()> {
    let env_pairs = pairs(cni_args)?;
    let conf_pairs: Vec<(&String, String)> = match conf_args.and_then(|args| args.get("cni")) {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k, text_of(v))).collect(),
        _ => Vec::new(),
    };
    let ignore_unknown = env_pairs
        .iter()
        .any(|(k, v)| *k == "IgnoreUnknown" && is_true(v))
        || conf_pairs
            .iter()
            .any(|(k, v)| *k == "IgnoreUnknown" && is_true(v));
    if ignore_unknown {
        return Ok(());
    }
    if let Some((key, value)) = env_pairs.iter().find(|(k, _)| !KNOWN.contains(k)) {
        return Err(unknown("CNI_ARGS", key, value));
    }
    if let Some((key, value)) = conf_pairs
        .iter()
        .find(|(k, _)| !KNOWN.contains(&k.as_str()))
    {
        return Err(unknown("args.cni", key, value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubelet_args_pass() {
        let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u";
        assert!(check(args, None).is_ok());
        assert!(check("K8S_POD_NAME=web", None).is_ok());
        assert!(check("", None).is_ok());
    }

    #[test]
    fn unknown_keys_name_key_and_value() {
        let error = check("K8S_POD_NAME=web;FOO=bar", None).unwrap_err();
        assert_eq!(error.code, UNSUPPORTED_FIELD);
        assert!(
            error.msg.contains("\"FOO\"") && error.msg.contains("\"bar\""),
            "{}",
            error.msg
        );
        let error = check("", Some(&json!({"cni": {"ips": ["5fd::1"]}}))).unwrap_err();
        assert!(
            error.msg.starts_with("unknown args.cni key \"ips\""),
            "{}",
            error.msg
        );
    }

    #[test]
    fn ignore_unknown_from_either_place() {
        assert!(check("IgnoreUnknown=true;FOO=bar", None).is_ok());
        assert!(check("FOO=bar", Some(&json!({"cni": {"IgnoreUnknown": true}}))).is_ok());
        assert!(check("IgnoreUnknown=0;FOO=bar", None).is_err());
    }

    #[test]
    fn malformed_pair_is_env_error() {
        assert_eq!(check("FOO", None).unwrap_err().code, INVALID_ENV);
    }

    #[test]
    fn ip_is_a_known_key_and_parses() {
        assert!(check("IP=5fd::10", None).is_ok());
        let ips = requested_ips("IgnoreUnknown=1;IP=5fd::10/64,10.0.0.5;K8S_POD_NAME=x").unwrap();
        assert_eq!(
            ips,
            [
                "5fd::10".parse::<IpAddr>().unwrap(),
                "10.0.0.5".parse().unwrap()
            ]
        );
        assert!(requested_ips("K8S_POD_NAME=x").unwrap().is_empty());
        for bad in [
            "IP=5fd::zz",
            "IP=",
            "IP=5fd::1/129",
            "IP=10.0.0.1/33",
            "IP=5fd::1/x",
        ] {
            let error = requested_ips(bad).unwrap_err();
            assert_eq!(error.code, INVALID_ENV, "{bad}");
            assert!(
                error.msg.starts_with("invalid CNI_ARGS IP"),
                "{}",
                error.msg
            );
        }
        assert_eq!(parse_ip(" 5fd::1/128 "), "5fd::1".parse().ok());
    }

    #[test]
    fn non_cni_args_are_left_alone() {
        assert!(check("", Some(&json!({"other": {"x": 1}}))).is_ok());
    }
}
