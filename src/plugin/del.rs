//! DEL: delete the host veth of this attachment; its pod end and /128 route
//! go with it. Needs neither CNI_NETNS nor the namespace, and succeeds when
//! nothing is left.

use super::host_veth::{self, is_ours};
use super::naming::AttachmentId;
use super::pod::Pod;
use super::{attachment_id, open_host, pod_interface_name};
use crate::cni::config::NetConf;
use crate::cni::env::Env;
use crate::cni::error::{CniResult, Wrap};
use crate::netlink::Netlink;
use crate::netlink::link::Link;

pub fn del(env: &Env, conf: &NetConf) -> CniResult<()> {
    let mut host = open_host()?;
    let id = attachment_id(env, conf);
    let found = match host_veth::find(&mut host, &id)? {
        Some(link) => Some(link),
        None => unlabelled_pair(&mut host, env, conf, &id)?,
    };
    let Some(link) = found else {
        return Ok(());
    };
    match host.delete_link(link.index) {
        // A concurrent GC or the pod's namespace going away got there first.
        Err(e) if e.errno == libc::ENODEV => Ok(()),
        other => other.wrap(format_args!("delete host veth {}", link.name)),
    }
}

/// An ADD killed between creating the pair and labelling it leaves a host
/// veth without alias. It is found from the pod side: the pod interface is
/// a veth whose peer is one of our unlabelled host veths pointing back at it.
fn unlabelled_pair(
    host: &mut Netlink,
    env: &Env,
    conf: &NetConf,
    id: &AttachmentId,
) -> CniResult<Option<Link>> {
    if env.netns.is_empty() {
        return Ok(None);
    }
    // A namespace that is gone or unusable holds nothing left to delete.
    let Ok(mut pod) = Pod::open(&env.netns) else {
        return Ok(None);
    };
    let pod_link = pod
        .nl
        .link_by_name(pod_interface_name(env, conf))
        .wrap("look up interface in pod")?;
    let Some(pod_link) = pod_link.filter(|l| l.is_veth() && l.peer_index != 0) else {
        return Ok(None);
    };
    let peer = host
        .link_by_index(pod_link.peer_index)
        .wrap("look up host veth by index")?;
    let is_unlabelled_peer = |l: &Link| {
        is_ours(l)
            && l.alias.is_empty()
            && l.peer_index == pod_link.index
            && id.may_own_host_veth(&l.name)
    };
    Ok(peer.filter(is_unlabelled_peer))
}
