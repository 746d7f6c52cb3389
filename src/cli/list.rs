//! list: every attachment on this node, read from the kernel alone (the
//! host veths' aliases and their /128 and /32 routes), each marked when
//! its address is outside the node's current /64.

use super::{
    BINARY_NAME, CONFLIST_NAME, DEFAULT_CONF_DIR, EXIT_OK, EXIT_PROBLEM, Options, Outcome,
};
use crate::cni::config::DEFAULT_INTERFACE;
use crate::cni::error::CniError;
use crate::plugin::naming::prefix_text;
use crate::plugin::{attachments, fastpath, filter, node_status};
use serde_json::Value;

/// What a row whose address left the node's /64 says.
pub const OUTSIDE_MARK: &str = "OUTSIDE NODE /64";

/// `--interface`, else the conflist's `myceliumInterface`, else the default.
pub(super) fn interface_of(options: &Options) -> String {
    if let Some(interface) = options.get("interface") {
        return interface.into();
    }
    let default_conf = format!("{DEFAULT_CONF_DIR}/{CONFLIST_NAME}");
    let path = options.get("conf").unwrap_or(&default_conf);
    let list = super::conflist::read(path).ok();
    let plugins = list.as_ref().and_then(|l| l.get("plugins")?.as_array());
    plugins
        .into_iter()
        .flatten()
        .find(|p| p.get("type").and_then(Value::as_str) == Some(BINARY_NAME))
        .and_then(|p| p.get("myceliumInterface")?.as_str())
        .unwrap_or(DEFAULT_INTERFACE)
        .into()
}

pub fn list(options: &Options) -> Outcome {
    let rows = match attachments() {
        Ok(rows) => rows,
        Err(error) => {
            return Outcome {
                stdout: format!("list failed: {}\n", error.msg),
                exit_code: EXIT_PROBLEM,
            };
        }
    };
    let interface = interface_of(options);
    let node = node_status(&interface).map_err(CniError::from);
    let mut outside = 0;
    let header = [
        "NETWORK",
        "CONTAINER",
        "IFNAME",
        "ADDRESS",
        "IPV4",
        "HOST-VETH",
        "",
    ];
    let mut table = vec![header.map(String::from)];
    for row in rows {
        let mark = match &node {
            Ok(node) if row.outside(node) => {
                outside += 1;
                OUTSIDE_MARK
            }
            _ => "",
        };
        table.push([
            row.network,
            row.container_id,
            row.ifname,
            row.address,
            row.ipv4,
            row.host_veth,
            mark.into(),
        ]);
    }
    let mut stdout = render(&table);
    match &node {
        Ok(node) if outside > 0 => stdout.push_str(&format!(
            "{outside} attachment(s) outside the node's /64 {} ({interface}): the Mycelium key, and with it the /64, changed; the overlay no longer routes them here: restart those pods\n",
            prefix_text(node.address)
        )),
        Ok(_) => {}
        Err(error) => stdout.push_str(&format!(
            "node /64 unknown ({}): addresses not checked\n",
            error.msg
        )),
    }
    let state = crate::plugin::nft_table::open().and_then(|mut nl| filter::state(&mut nl));
    match state {
        Ok(state) => stdout.push_str(&format!("source filter: {state}\n")),
        Err(error) => stdout.push_str(&format!("source filter: {}\n", error.msg)),
    }
    match fastpath::Summary::read() {
        Ok(summary) => stdout.push_str(&format!("{summary}\n")),
        Err(error) => stdout.push_str(&format!("fast path: {}\n", error.msg)),
    }
    Outcome {
        stdout,
        exit_code: EXIT_OK,
    }
}

/// Columns padded to their widest cell; no trailing blanks.
fn render(table: &[[String; 7]]) -> String {
    let mut widths = [0usize; 7];
    for row in table {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut stdout = String::new();
    for row in table {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(cell);
            line.push_str(&" ".repeat(width - cell.len() + 2));
        }
        stdout.push_str(line.trim_end());
        stdout.push('\n');
    }
    stdout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_without_trailing_blanks() {
        let row = |a: &str, f: &str| [a, "c", "eth0", "5fd::1", "-", "myc1", f].map(String::from);
        let text = render(&[row("NETWORK", ""), row("n", OUTSIDE_MARK)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NETWORK  c  eth0  5fd::1  -  myc1");
        assert_eq!(
            lines[1],
            format!("n        c  eth0  5fd::1  -  myc1  {OUTSIDE_MARK}")
        );
    }

    #[test]
    fn interface_from_option_then_conflist_then_default() {
        let args = |list: &[&str]| -> Vec<String> { list.iter().map(|s| s.to_string()).collect() };
        let parse =
            |list: &[&str]| Options::parse(&args(list), &["interface", "conf"], &[]).unwrap();
        assert_eq!(interface_of(&parse(&["--interface", "myc7"])), "myc7");
        let path = std::env::temp_dir().join(format!("mcni-list-{}.conflist", std::process::id()));
        let list = r#"{"plugins":[{"type":"loopback"},{"type":"mycelium-cni","myceliumInterface":"tun9"}]}"#;
        std::fs::write(&path, list).unwrap();
        assert_eq!(
            interface_of(&parse(&["--conf", path.to_str().unwrap()])),
            "tun9"
        );
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            interface_of(&parse(&["--conf", "/nonexistent"])),
            DEFAULT_INTERFACE
        );
    }
}
