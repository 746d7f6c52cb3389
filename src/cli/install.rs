//! install / uninstall: the binary into the CNI bin directory and the
//! conflist into the config directory, each by writing a temporary file and
//! renaming it (atomic for readers), the conflist last: a runtime never sees
//! a config whose plugin binary is missing or half written.

use super::{
    BINARY_NAME, CONFLIST_NAME, DEFAULT_BIN_DIR, DEFAULT_CONF_DIR, EXIT_OK, EXIT_PROBLEM, Options,
    Outcome,
};
use crate::cni::config::{DEFAULT_INTERFACE, NetConf, conflist_entry};
use crate::cni::error::CniError;
use crate::log;
use crate::plugin::{nft_table, node_status};
use serde_json::{Map, Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
/// How often `--wait` looks at the interface: a node is ready within a
/// fraction of a second of the daemon's address appearing (a check is a few
/// netlink requests).
const WAIT_STEP: std::time::Duration = std::time::Duration::from_millis(200);

fn write_atomically(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let target = dir.join(name);
    let temporary = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode)))
        .and_then(|()| std::fs::rename(&temporary, &target));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(format!("write {}: {e}", target.display()));
    }
    Ok(target)
}

/// `overlayIngress` from --overlay-ingress and --overlay-allow: the prefixes
/// imply `replies`; none given leaves the key out (open).
fn overlay_ingress(options: &Options) -> Result<Option<Value>, String> {
    let allowed = options.all("overlay-allow");
    match (options.get("overlay-ingress"), allowed.is_empty()) {
        (Some("open"), false) => Err("--overlay-allow needs --overlay-ingress replies".into()),
        (setting, true) => Ok(setting.map(Value::from)),
        (_, false) => Ok(Some(allowed.into())),
    }
}

/// `egress` and `ipv4Pool` from --egress and --ipv4-pool; absent options
/// leave the keys out (the defaults: nat, 198.18.0.0/16).
fn egress_keys(options: &Options) -> Vec<(&'static str, Value)> {
    let mut keys = Vec::new();
    if let Some(egress) = options.get("egress") {
        keys.push(("egress", Value::from(egress)));
    }
    if let Some(pool) = options.get("ipv4-pool") {
        keys.push(("ipv4Pool", Value::from(pool)));
    }
    keys
}

/// A plugin chained after ours, as k3s's own flannel conflist chains it.
struct Chained {
    kind: &'static str,
    capability: &'static str,
    /// What a node loses without it.
    gives: &'static str,
    /// The install flag that leaves it out.
    flag: &'static str,
}

const CHAINED: [Chained; 2] = [
    Chained {
        kind: "portmap",
        capability: "portMappings",
        gives: "hostPort (and with it k3s's ServiceLB and Traefik on ports 80/443)",
        flag: "no-portmap",
    },
    Chained {
        kind: "bandwidth",
        capability: "bandwidth",
        gives: "the kubernetes.io/ingress-bandwidth and egress-bandwidth pod annotations",
        flag: "no-bandwidth",
    },
];

/// An executable file, or a symlink. Some k3s versions link the plugins to
/// an absolute path in a data directory that the DaemonSet's init container
/// does not mount: the link cannot be followed here, but the runtime on the
/// node follows it.
fn is_plugin(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        m.file_type().is_symlink() || (m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The plugins to chain after ours: those in the bin directory and not left
/// out by a flag; the report says which were left out and why.
fn chained_plugins(options: &Options, bin_dir: &Path, report: &mut String) -> Vec<Value> {
    let mut plugins = Vec::new();
    for chained in &CHAINED {
        let (kind, gives) = (chained.kind, chained.gives);
        if options.has(chained.flag) {
            *report += &format!(
                "left out {kind} (--{}): {gives} will not work\n",
                chained.flag
            );
        } else if !is_plugin(&bin_dir.join(kind)) {
            *report += &format!(
                "warning: left out {kind}: no {kind} plugin in {}: {gives} will not work (install the CNI reference plugins there, then run install again)\n",
                bin_dir.display()
            );
        } else {
            *report += &format!("chained {kind}: {gives}\n");
            let capabilities = Value::Object(Map::from_iter([(
                chained.capability.to_string(),
                Value::Bool(true),
            )]));
            plugins.push(json!({ "type": kind, "capabilities": capabilities }));
        }
    }
    plugins
}

/// The conflist: loopback, this plugin (which takes requested addresses:
/// capability `ips`), then `chained`; checked with the same parser the
/// plugin uses, so that a bad --service-cidr fails here, not at ADD.
fn conflist(
    name: &str,
    interface: &str,
    service_cidrs: &[&str],
    ingress: Option<Value>,
    chained: Vec<Value>,
    egress: Vec<(&str, Value)>,
) -> Result<String, String> {
    let routes: Vec<_> = service_cidrs
        .iter()
        .map(|dst| json!({ "dst": dst }))
        .collect();
    let mut plugin = Map::new();
    plugin.insert("type".into(), BINARY_NAME.into());
    plugin.insert("myceliumInterface".into(), interface.into());
    if !routes.is_empty() {
        plugin.insert("routes".into(), routes.into());
    }
    if let Some(ingress) = ingress {
        plugin.insert("overlayIngress".into(), ingress);
    }
    plugin.insert("capabilities".into(), json!({ "ips": true }));
    for (key, value) in egress {
        plugin.insert(key.into(), value);
    }
    let mut list = json!({ "cniVersion": "1.0.0", "name": name });
    NetConf::from_value(&conflist_entry(&list, &plugin)).map_err(|e| e.msg)?;
    if let Value::Object(fields) = &mut list {
        let mut plugins = vec![json!({ "type": "loopback" }), Value::Object(plugin)];
        plugins.extend(chained);
        fields.insert("plugins".into(), plugins.into());
    }
    Ok(list.to_string())
}

pub fn install(options: &Options) -> Outcome {
    match try_install(options) {
        Ok(report) => Outcome {
            stdout: report,
            exit_code: EXIT_OK,
        },
        Err(msg) => Outcome {
            stdout: format!("install failed: {msg}\n"),
            exit_code: EXIT_PROBLEM,
        },
    }
}

fn try_install(options: &Options) -> Result<String, String> {
    let bin_dir = Path::new(options.get("bin-dir").unwrap_or(DEFAULT_BIN_DIR));
    let conf_dir = Path::new(options.get("conf-dir").unwrap_or(DEFAULT_CONF_DIR));
    let interface = options.get("interface").unwrap_or(DEFAULT_INTERFACE);
    let name = options.get("name").unwrap_or("mycelium");
    let ingress = overlay_ingress(options)?;
    let mut report = String::new();
    let chained = chained_plugins(options, bin_dir, &mut report);
    let service_cidrs = options.all("service-cidr");
    let egress = egress_keys(options);
    let conflist = conflist(name, interface, &service_cidrs, ingress, chained, egress)?;

    let binary = std::fs::read("/proc/self/exe").map_err(|e| format!("read own binary: {e}"))?;
    let installed = write_atomically(bin_dir, BINARY_NAME, &binary, 0o755)?;
    report += &format!("installed {}\n", installed.display());
    if !is_plugin(&bin_dir.join("loopback")) {
        report += &format!(
            "warning: no loopback plugin in {}: the conflist chains it (install the CNI reference plugins)\n",
            bin_dir.display()
        );
    }

    let mut status = node_status(interface).map_err(CniError::from);
    let mut said = String::new();
    while options.has("wait") && status.is_err() {
        // One line per state the interface is in, not one per look.
        if let Err(error) = &status {
            if error.msg != said {
                log::line(&format!(
                    "waiting for the Mycelium interface: {}",
                    error.msg
                ));
                said.clone_from(&error.msg);
            }
        }
        std::thread::sleep(WAIT_STEP);
        status = node_status(interface).map_err(CniError::from);
    }
    if let Err(error) = status {
        report += &format!(
            "warning: {}: pods cannot be attached until Mycelium is up\n",
            error.msg
        );
    }
    let written = write_atomically(conf_dir, CONFLIST_NAME, conflist.as_bytes(), 0o644)?;
    report += &format!("wrote {}\n", written.display());
    Ok(report)
}

/// Removes the conflist first (no new attachments), then the binary, then
/// the source filter's nf_tables table (unless --keep-filter: an install
/// root that is not this node's).
pub fn uninstall(options: &Options) -> Outcome {
    let bin_dir = Path::new(options.get("bin-dir").unwrap_or(DEFAULT_BIN_DIR));
    let conf_dir = Path::new(options.get("conf-dir").unwrap_or(DEFAULT_CONF_DIR));
    let mut report = String::new();
    let mut exit_code = EXIT_OK;
    for path in [conf_dir.join(CONFLIST_NAME), bin_dir.join(BINARY_NAME)] {
        match std::fs::remove_file(&path) {
            Ok(()) => report += &format!("removed {}\n", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report += &format!("absent {}\n", path.display());
            }
            Err(e) => {
                report += &format!("cannot remove {}: {e}\n", path.display());
                exit_code = EXIT_PROBLEM;
            }
        }
    }
    if options.has("keep-filter") {
        return Outcome {
            stdout: report,
            exit_code,
        };
    }
    match nft_table::open().and_then(|mut nl| nft_table::remove(&mut nl)) {
        Ok(()) => report += &format!("removed nf_tables table inet {}\n", nft_table::TABLE),
        Err(error) => {
            report += &format!("cannot remove the source filter: {}\n", error.msg);
            exit_code = EXIT_PROBLEM;
        }
    }
    Outcome {
        stdout: report,
        exit_code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_chains_loopback_and_carries_routes() {
        let text = conflist(
            "mycelium",
            "myc9",
            &["fd00:10:96::/112"],
            None,
            vec![],
            vec![],
        )
        .unwrap();
        let list: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(list["plugins"][0]["type"], "loopback");
        assert_eq!(list["plugins"][1]["myceliumInterface"], "myc9");
        assert_eq!(list["plugins"][1]["routes"][0]["dst"], "fd00:10:96::/112");
        assert_eq!(list["name"], "mycelium");
    }

    #[test]
    fn conflist_refuses_what_add_would_refuse() {
        assert!(
            conflist("mycelium", "myc9", &["10.43.0.0/16"], None, vec![], vec![])
                .unwrap_err()
                .contains("routes[0].dst")
        );
        assert!(conflist("mycelium", "a/b", &[], None, vec![], vec![]).is_err());
        assert!(conflist("-bad", "myc9", &[], None, vec![], vec![]).is_err());
        let ingress = Some(serde_json::json!(["4aa::/64", "x"]));
        let bad = conflist("m", "myc9", &[], ingress, vec![], vec![]);
        assert!(bad.unwrap_err().contains("overlayIngress[1]"));
    }

    fn options(args: &[&str]) -> Options {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let flags = ["no-portmap", "no-bandwidth"];
        Options::parse(&args, &["overlay-ingress", "overlay-allow"], &flags).unwrap()
    }

    #[test]
    fn chains_what_the_bin_dir_has_unless_left_out() {
        let dir = std::env::temp_dir().join(format!("mcni-chain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut report = String::new();
        assert!(chained_plugins(&options(&[]), &dir, &mut report).is_empty());
        assert!(
            report.contains("left out portmap: no portmap plugin in"),
            "{report}"
        );
        assert!(
            report.contains("left out bandwidth: no bandwidth plugin in"),
            "{report}"
        );
        write_atomically(&dir, "portmap", b"#!/bin/sh\n", 0o755).unwrap();
        write_atomically(&dir, "bandwidth", b"", 0o644).unwrap();
        let mut report = String::new();
        let chained = chained_plugins(&options(&[]), &dir, &mut report);
        assert_eq!(chained.len(), 1, "a file that is not executable: {report}");
        // As some k3s versions link them: to a path not mounted here.
        std::fs::remove_file(dir.join("bandwidth")).unwrap();
        let target = "/var/lib/rancher/k3s/data/0123abcd/bin/cni";
        std::os::unix::fs::symlink(target, dir.join("bandwidth")).unwrap();
        let mut report = String::new();
        let chained = chained_plugins(&options(&[]), &dir, &mut report);
        assert_eq!(chained[0]["type"], "portmap");
        assert_eq!(chained[0]["capabilities"]["portMappings"], true);
        assert_eq!(chained[1]["type"], "bandwidth");
        assert_eq!(chained[1]["capabilities"]["bandwidth"], true);
        assert!(report.contains("chained portmap: hostPort"), "{report}");
        let mut report = String::new();
        let chained = chained_plugins(&options(&["--no-portmap"]), &dir, &mut report);
        assert_eq!(chained.len(), 1);
        assert!(
            report.contains("left out portmap (--no-portmap)"),
            "{report}"
        );
        let text = conflist("m", "myc9", &[], None, chained, vec![]).unwrap();
        let list: serde_json::Value = serde_json::from_str(&text).unwrap();
        let kinds: Vec<_> = list["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].clone())
            .collect();
        assert_eq!(kinds, ["loopback", "mycelium-cni", "bandwidth"]);
        assert_eq!(list["plugins"][1]["capabilities"]["ips"], true);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn overlay_ingress_options_make_the_key() {
        assert_eq!(overlay_ingress(&options(&[])).unwrap(), None);
        let replies = overlay_ingress(&options(&["--overlay-ingress", "replies"])).unwrap();
        assert_eq!(replies, Some("replies".into()));
        let listed = ["--overlay-allow", "4aa::/64", "--overlay-allow=5b0::/64"];
        let allowed = overlay_ingress(&options(&listed)).unwrap();
        assert_eq!(allowed, Some(serde_json::json!(["4aa::/64", "5b0::/64"])));
        let both = ["--overlay-ingress", "open", "--overlay-allow", "4aa::/64"];
        assert!(overlay_ingress(&options(&both)).is_err());
        let text = conflist("m", "myc9", &[], replies, vec![], vec![]).unwrap();
        assert!(text.contains(r#""overlayIngress":"replies""#), "{text}");
    }

    #[test]
    fn egress_options_make_the_keys_and_are_checked() {
        let args: Vec<String> = ["--egress", "overlay", "--ipv4-pool=10.99.0.0/16"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let options = Options::parse(&args, &["egress", "ipv4-pool"], &[]).unwrap();
        let text = conflist("m", "myc9", &[], None, vec![], egress_keys(&options)).unwrap();
        assert!(text.contains(r#""egress":"overlay""#), "{text}");
        assert!(text.contains(r#""ipv4Pool":"10.99.0.0/16""#), "{text}");
        let bad = conflist(
            "m",
            "myc9",
            &[],
            None,
            vec![],
            vec![("egress", "masquerade".into())],
        );
        assert!(bad.unwrap_err().contains("egress"));
        let plain = conflist("m", "myc9", &[], None, vec![], vec![]).unwrap();
        assert!(!plain.contains("egress"), "nat is the default: {plain}");
    }

    #[test]
    fn atomic_write_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("mcni-unit-{}", std::process::id()));
        let path = write_atomically(&dir.join("sub"), "f", b"x", 0o640).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(std::fs::read_dir(dir.join("sub")).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
