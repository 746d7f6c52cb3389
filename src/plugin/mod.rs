//! The plugin's commands: decisions about what to create, check or remove.

mod add;
mod check;
mod del;
mod gc;
mod host;
mod inventory;
pub mod naming;
pub mod node;

pub use inventory::{attachments, node_status};

use crate::cni::Plugin;
use crate::cni::config::{NetConf, ValidAttachment};
use crate::cni::env::Env;
use crate::cni::error::{CniError, CniResult, INVALID_ENV, IO_FAILURE, STATUS_NOT_AVAILABLE};
use crate::netlink::link::Link;
use crate::netlink::{Netlink, NlError};
use crate::netns::Netns;
use ipnetwork::Ipv6Network;
use naming::AttachmentId;

pub struct MyceliumPlugin;

impl Plugin for MyceliumPlugin {
    fn add(&self, env: &Env, conf: &NetConf) -> CniResult<String> {
        add::add(env, conf)
    }

    fn del(&self, env: &Env, conf: &NetConf) -> CniResult<()> {
        del::del(env, conf)
    }

    fn check(&self, env: &Env, conf: &NetConf) -> CniResult<()> {
        check::check(env, conf)
    }

    fn status(&self, conf: &NetConf) -> CniResult<()> {
        let mut nl = open_host()?;
        node::inspect(&mut nl, &conf.mycelium_interface)
            .map(|_| ())
            .map_err(|mut error| {
                error.code = STATUS_NOT_AVAILABLE;
                error
            })
    }

    fn gc(&self, conf: &NetConf, valid: &[ValidAttachment]) -> CniResult<()> {
        gc::gc(conf, valid)
    }
}

/// One line on stderr in one write, so that lines of concurrent runs do not
/// interleave; stdout belongs to the CNI result.
pub fn log(line: &str) {
    let mut text = String::with_capacity(line.len() + 15);
    text.push_str("mycelium-cni: ");
    text.push_str(line);
    text.push('\n');
    let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
}

/// A failed kernel call: code 5 (I/O) with "what: errno text (kernel text)".
pub fn kernel_error(what: &str, error: NlError) -> CniError {
    let mut msg = String::from(what);
    msg.push_str(": ");
    msg.push_str(&error.to_string());
    CniError::new(IO_FAILURE, msg)
}

pub fn open_host() -> CniResult<Netlink> {
    Netlink::open().map_err(|e| kernel_error("open netlink socket", e))
}

fn attachment_id<'a>(env: &'a Env, conf: &'a NetConf) -> AttachmentId<'a> {
    AttachmentId {
        network: &conf.name,
        container_id: &env.container_id,
        ifname: &env.ifname,
        hash_bits: env.test_hash_bits.unwrap_or(naming::HASH_BITS),
    }
}

/// The interface inside the pod: `podInterface` when this network is a
/// secondary one next to another plugin's `CNI_IFNAME`, else `CNI_IFNAME`.
pub fn pod_interface_name<'a>(env: &'a Env, conf: &'a NetConf) -> &'a str {
    conf.pod_interface.as_deref().unwrap_or(&env.ifname)
}

/// The routes in the pod via fe80::1: 400::/7, the configured `routes`,
/// then `::/0` with `defaultRoute`; each destination once.
pub fn pod_routes(conf: &NetConf) -> Vec<Ipv6Network> {
    let overlay = Ipv6Network::new(naming::OVERLAY, naming::OVERLAY_PREFIX_LEN);
    let default = Ipv6Network::new(std::net::Ipv6Addr::UNSPECIFIED, 0);
    let mut routes: Vec<Ipv6Network> = overlay.into_iter().collect();
    let wanted = conf
        .routes
        .iter()
        .copied()
        .chain(default.into_iter().filter(|_| conf.default_route));
    for route in wanted {
        if !routes.contains(&route) {
            routes.push(route);
        }
    }
    routes
}

/// The pod's namespace and a netlink socket bound inside it.
pub struct Pod {
    pub netns: Netns,
    pub nl: Netlink,
}

/// Opens CNI_NETNS, refuses the host's own namespace, and creates the pod's
/// socket from inside it (the socket stays bound there).
pub fn open_pod(path: &str) -> CniResult<Pod> {
    let what = || format!("open CNI_NETNS {path}");
    let netns = Netns::open(path).map_err(|errno| CniError::errno(INVALID_ENV, &what(), errno))?;
    match netns.is_current() {
        Ok(false) => {}
        Ok(true) => {
            let msg = format!("CNI_NETNS {path} is the host's own network namespace");
            return Err(CniError::new(INVALID_ENV, msg));
        }
        Err(errno) => return Err(CniError::errno(IO_FAILURE, &what(), errno)),
    }
    let nl = {
        let _inside = netns.enter().map_err(|errno| match errno {
            libc::EINVAL => CniError::new(
                INVALID_ENV,
                format!("CNI_NETNS {path} is not a network namespace"),
            ),
            _ => CniError::errno(IO_FAILURE, &format!("enter CNI_NETNS {path}"), errno),
        })?;
        Netlink::open().map_err(|e| kernel_error("open netlink socket in pod", e))?
    };
    Ok(Pod { netns, nl })
}

/// The host veth of an attachment, found by its derived name and, failing
/// that (a name collision moved it), by its alias among all links.
pub fn find_host_veth(nl: &mut Netlink, id: &AttachmentId) -> CniResult<Option<Link>> {
    let alias = id.alias();
    let by_name = nl
        .link_by_name(&id.host_veth_name(0))
        .map_err(|e| kernel_error("look up host veth", e))?;
    if let Some(link) = by_name.filter(|link| link.alias == alias && is_ours(link)) {
        return Ok(Some(link));
    }
    let links = nl.links().map_err(|e| kernel_error("list links", e))?;
    Ok(links
        .into_iter()
        .find(|link| link.alias == alias && is_ours(link)))
}

/// A veth whose name has our prefix: only such links are ever deleted.
pub fn is_ours(link: &Link) -> bool {
    link.kind == "veth" && link.name.starts_with(naming::HOST_VETH_PREFIX)
}
