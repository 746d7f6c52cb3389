//! Host sysctls: IPv6 forwarding on, without losing router advertisements.

use super::log;
use crate::cni::error::{CniError, CniResult, IO_FAILURE};
use crate::sysctl;

fn sysctl_error(what: &str, interface: &str, key: &str, errno: i32) -> CniError {
    CniError::errno(
        IO_FAILURE,
        &format!("{what} net.ipv6.conf.{interface}.{key}"),
        errno,
    )
}

/// Our host veth must not learn routes from whatever the pod sends.
pub fn refuse_router_advertisements(interface: &str) -> CniResult<()> {
    sysctl::write(interface, "accept_ra", "0")
        .map_err(|e| sysctl_error("write", interface, "accept_ra", e))
}

/// Turns on `net.ipv6.conf.all.forwarding` if it is off (read first, write
/// only when 0). With forwarding on, the kernel ignores router
/// advertisements on interfaces with accept_ra=1, and a host that learns its
/// default route by SLAAC would lose it: those interfaces get accept_ra=2
/// first, which keeps accepting them while forwarding.
pub fn ensure_forwarding() -> CniResult<()> {
    let current = sysctl::read("all", "forwarding")
        .map_err(|e| sysctl_error("read", "all", "forwarding", e))?;
    if current != "0" {
        return Ok(());
    }
    let interfaces =
        sysctl::interfaces().map_err(|e| CniError::errno(IO_FAILURE, "list net.ipv6.conf", e))?;
    for interface in interfaces {
        if interface == "lo" || sysctl::read(&interface, "accept_ra").as_deref() != Ok("1") {
            continue;
        }
        sysctl::write(&interface, "accept_ra", "2")
            .map_err(|e| sysctl_error("write", &interface, "accept_ra", e))?;
        log(&format!(
            "set net.ipv6.conf.{interface}.accept_ra=2 so that it keeps accepting router advertisements with forwarding on"
        ));
    }
    sysctl::write("all", "forwarding", "1")
        .map_err(|e| sysctl_error("write", "all", "forwarding", e))?;
    log("set net.ipv6.conf.all.forwarding=1");
    Ok(())
}
