//! The plugin's commands, one file each (add, del, check, status, gc); this
//! file holds what they share.

mod add;
mod check;
mod del;
pub mod egress;
pub mod fastpath;
pub mod filter;
mod gc;
mod host;
mod host_veth;
pub mod ingress;
mod inventory;
pub mod naming;
pub mod nft_table;
pub mod node;
mod pod;
pub mod requested;
mod rules;
mod status;

pub use inventory::{attachments, node_status, overlay_route_interfaces};

use crate::cni::Plugin;
use crate::cni::config::{NetConf, ValidAttachment};
use crate::cni::env::Env;
use crate::cni::error::{CniResult, Wrap};
use crate::netlink::Netlink;
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
        status::status(conf)
    }

    fn gc(&self, conf: &NetConf, valid: &[ValidAttachment]) -> CniResult<()> {
        gc::gc(conf, valid)
    }
}

/// A netlink socket in the host (the plugin's own) namespace.
fn open_host() -> CniResult<Netlink> {
    Netlink::open().wrap("open netlink socket")
}

fn attachment_id<'a>(env: &'a Env, conf: &'a NetConf) -> AttachmentId<'a> {
    AttachmentId::new(&conf.name, &env.container_id, &env.ifname)
}

/// The interface inside the pod: `podInterface` when this network is a
/// secondary one next to another plugin's `CNI_IFNAME`, else `CNI_IFNAME`.
fn pod_interface_name<'a>(env: &'a Env, conf: &'a NetConf) -> &'a str {
    conf.pod_interface.as_deref().unwrap_or(&env.ifname)
}

/// The routes in the pod via fe80::1: 400::/7, the configured `routes`,
/// then `::/0` with `defaultRoute` or egress `nat`; each destination once.
fn pod_routes(conf: &NetConf) -> Vec<Ipv6Network> {
    let overlay = Ipv6Network::new(naming::OVERLAY, naming::OVERLAY_PREFIX_LEN);
    let default = Ipv6Network::new(std::net::Ipv6Addr::UNSPECIFIED, 0);
    let mut routes: Vec<Ipv6Network> = overlay.into_iter().collect();
    let wanted = conf.routes.iter().copied().chain(
        default
            .into_iter()
            .filter(|_| conf.default_route || conf.egress.is_nat()),
    );
    for route in wanted {
        if !routes.contains(&route) {
            routes.push(route);
        }
    }
    routes
}
