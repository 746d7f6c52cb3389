//! DEL: delete the host veth of this attachment; its pod end and /128 route
//! go with it. Needs neither CNI_NETNS nor the namespace, and succeeds when
//! nothing is left.

use super::{attachment_id, find_host_veth, kernel_error, open_host};
use crate::cni::config::NetConf;
use crate::cni::env::Env;
use crate::cni::error::CniResult;

pub fn del(env: &Env, conf: &NetConf) -> CniResult<()> {
    let mut host = open_host()?;
    let Some(link) = find_host_veth(&mut host, &attachment_id(env, conf))? else {
        return Ok(());
    };
    match host.delete_link(link.index) {
        // A concurrent GC or the pod's namespace going away got there first.
        Err(e) if e.errno != libc::ENODEV => {
            Err(kernel_error(&format!("delete host veth {}", link.name), e))
        }
        _ => Ok(()),
    }
}
