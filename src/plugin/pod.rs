//! The pod's network namespace, with a netlink socket bound inside it.

use crate::cni::error::{CniError, CniResult, INVALID_ENV, Wrap};
use crate::errno::Errno;
use crate::netlink::Netlink;
use crate::netns::Netns;

pub struct Pod {
    pub netns: Netns,
    pub nl: Netlink,
}

impl Pod {
    /// Opens CNI_NETNS, refuses the host's own namespace and anything that
    /// is no network namespace, and creates the pod's socket from inside it
    /// (the socket stays bound there; no more hops are needed).
    pub fn open(path: &str) -> CniResult<Pod> {
        let not_netns = || {
            let msg = format!("CNI_NETNS {path} is not a network namespace");
            CniError::new(INVALID_ENV, msg)
        };
        let netns = match Netns::open(path) {
            Err(Errno(libc::EINVAL)) => return Err(not_netns()),
            other => other.wrap_as(INVALID_ENV, format_args!("open CNI_NETNS {path}"))?,
        };
        if netns
            .is_current()
            .wrap(format_args!("open CNI_NETNS {path}"))?
        {
            let msg = format!("CNI_NETNS {path} is the host's own network namespace");
            return Err(CniError::new(INVALID_ENV, msg));
        }
        let nl = {
            let _inside = match netns.enter() {
                Err(Errno(libc::EINVAL)) => return Err(not_netns()),
                other => other.wrap(format_args!("enter CNI_NETNS {path}"))?,
            };
            Netlink::open().wrap("open netlink socket in pod")?
        };
        Ok(Pod { netns, nl })
    }
}
