//! IPv6 sysctls under /proc/sys/net/ipv6/conf (per current namespace).

use crate::errno::Errno;

const CONF: &str = "/proc/sys/net/ipv6/conf";

fn path(interface: &str, key: &str) -> String {
    let mut path = String::with_capacity(CONF.len() + interface.len() + key.len() + 2);
    path.push_str(CONF);
    path.push('/');
    path.push_str(interface);
    path.push('/');
    path.push_str(key);
    path
}

pub fn read(interface: &str, key: &str) -> Result<String, Errno> {
    let text = std::fs::read_to_string(path(interface, key))?;
    Ok(text.trim().to_string())
}

pub fn write(interface: &str, key: &str, value: &str) -> Result<(), Errno> {
    Ok(std::fs::write(path(interface, key), value)?)
}

/// The interfaces with an IPv6 conf directory, without `all` and `default`.
pub fn interfaces() -> Result<Vec<String>, Errno> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(CONF)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != "all" && name != "default" {
            names.push(name);
        }
    }
    Ok(names)
}

const IPV4_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// `net.ipv4.ip_forward` (per current namespace).
pub fn ipv4_forwarding() -> Result<String, Errno> {
    Ok(std::fs::read_to_string(IPV4_FORWARD)?.trim().to_string())
}

pub fn enable_ipv4_forwarding() -> Result<(), Errno> {
    Ok(std::fs::write(IPV4_FORWARD, "1")?)
}
