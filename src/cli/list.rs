//! list: every attachment on this node, read from the kernel alone (the
//! host veths' aliases and their /128 and /32 routes).

use super::{EXIT_OK, EXIT_PROBLEM, Outcome};
use crate::plugin::attachments;
use crate::plugin::{fastpath, filter};

pub fn list() -> Outcome {
    let rows = match attachments() {
        Ok(rows) => rows,
        Err(error) => {
            return Outcome {
                stdout: format!("list failed: {}\n", error.msg),
                exit_code: EXIT_PROBLEM,
            };
        }
    };
    let header = [
        "NETWORK",
        "CONTAINER",
        "IFNAME",
        "ADDRESS",
        "IPV4",
        "HOST-VETH",
    ];
    let mut table = vec![header.map(String::from)];
    for row in rows {
        table.push([
            row.network,
            row.container_id,
            row.ifname,
            row.address,
            row.ipv4,
            row.host_veth,
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &table {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut stdout = String::new();
    for row in &table {
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            stdout.push_str(cell);
            if i + 1 < row.len() {
                stdout.push_str(&" ".repeat(width - cell.len() + 2));
            }
        }
        stdout.push('\n');
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
