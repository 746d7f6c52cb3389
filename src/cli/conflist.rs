//! Reading conflists as doctor and list do: regular files only, bounded,
//! never blocking; the plugin entries and ours among them.

use super::BINARY_NAME;
use crate::cni::config::{NetConf, conflist_entry};
use serde_json::{Map, Value};
use std::path::Path;

/// More than any conflist holds: nothing reads further.
pub(super) const MAX_CONFLIST: u64 = 4 << 20;

/// The file at `path` as JSON: a regular file of at most MAX_CONFLIST bytes,
/// opened without blocking (a FIFO or a device is refused, never waited on).
pub(super) fn read(path: &str) -> Result<Value, String> {
    let text = crate::regular_file::read_bounded(path, MAX_CONFLIST).map_err(|e| e.to_string())?;
    serde_json::from_slice(&text).map_err(|e| format!("is not JSON: {e}"))
}

pub(super) fn plugins_of(list: &Value) -> &[Value] {
    list.get("plugins")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(super) fn is_type(plugin: &Value, kind: &str) -> bool {
    plugin.get("type").and_then(Value::as_str) == Some(kind)
}

/// The mycelium-cni entry of a conflist.
pub(super) fn our_entry(list: &Value) -> Option<&Map<String, Value>> {
    plugins_of(list)
        .iter()
        .find(|p| is_type(p, BINARY_NAME))
        .and_then(Value::as_object)
}

/// Our networks in the `.conflist` files of `dir`, by file name order;
/// files that do not parse are the conflist check's business.
pub(super) fn networks_in(dir: &Path) -> Vec<NetConf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "conflist"))
        .collect();
    paths.sort();
    let mut networks: Vec<NetConf> = Vec::new();
    for path in paths {
        let Ok(list) = read(&path.to_string_lossy()) else {
            continue;
        };
        let parsed =
            our_entry(&list).map(|entry| NetConf::from_value(&conflist_entry(&list, entry)));
        if let Some(Ok(conf)) = parsed {
            if !networks.iter().any(|n| n.name == conf.name) {
                networks.push(conf);
            }
        }
    }
    networks
}
