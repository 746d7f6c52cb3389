//! IPv6 sysctls under /proc/sys/net/ipv6/conf (per current namespace).

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

fn errno(error: std::io::Error) -> i32 {
    error.raw_os_error().unwrap_or(libc::EIO)
}

pub fn read(interface: &str, key: &str) -> Result<String, i32> {
    let text = std::fs::read_to_string(path(interface, key)).map_err(errno)?;
    Ok(text.trim().to_string())
}

pub fn write(interface: &str, key: &str, value: &str) -> Result<(), i32> {
    std::fs::write(path(interface, key), value).map_err(errno)
}

/// The interfaces with an IPv6 conf directory, without `all` and `default`.
pub fn interfaces() -> Result<Vec<String>, i32> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(CONF).map_err(errno)? {
        let name = entry
            .map_err(errno)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name != "all" && name != "default" {
            names.push(name);
        }
    }
    Ok(names)
}
