//! Host sysctls: IPv6 forwarding on, without losing router advertisements.

use crate::cni::error::{CniResult, Wrap};
use crate::log;
use crate::sysctl;

/// Our host veth must not learn routes from whatever the pod sends.
pub fn refuse_router_advertisements(interface: &str) -> CniResult<()> {
    sysctl::write(interface, "accept_ra", "0")
        .wrap(format_args!("write net.ipv6.conf.{interface}.accept_ra"))
}

/// Turns on `net.ipv6.conf.all.forwarding` if it is off (read first, write
/// only when 0). With forwarding on, the kernel ignores router
/// advertisements on interfaces with accept_ra=1, and a host that learns its
/// default route by SLAAC would lose it: those interfaces get accept_ra=2
/// first, which keeps accepting them while forwarding.
pub fn ensure_forwarding() -> CniResult<()> {
    let current = sysctl::read("all", "forwarding").wrap("read net.ipv6.conf.all.forwarding")?;
    if current != "0" {
        return Ok(());
    }
    let interfaces = sysctl::interfaces().wrap("list net.ipv6.conf")?;
    for interface in interfaces {
        if interface == "lo" || sysctl::read(&interface, "accept_ra").as_deref() != Ok("1") {
            continue;
        }
        sysctl::write(&interface, "accept_ra", "2")
            .wrap(format_args!("write net.ipv6.conf.{interface}.accept_ra"))?;
        log::line(&format!(
            "set net.ipv6.conf.{interface}.accept_ra=2 so that it keeps accepting router advertisements with forwarding on"
        ));
    }
    sysctl::write("all", "forwarding", "1").wrap("write net.ipv6.conf.all.forwarding")?;
    log::line("set net.ipv6.conf.all.forwarding=1");
    Ok(())
}

/// Turns on `net.ipv4.ip_forward` if it is off (read first, write only
/// when 0): the pods' IPv4 egress is forwarded by the node.
pub fn ensure_ipv4_forwarding() -> CniResult<()> {
    let current = sysctl::ipv4_forwarding().wrap("read net.ipv4.ip_forward")?;
    if current != "0" {
        return Ok(());
    }
    sysctl::enable_ipv4_forwarding().wrap("write net.ipv4.ip_forward")?;
    log::line("set net.ipv4.ip_forward=1");
    Ok(())
}
