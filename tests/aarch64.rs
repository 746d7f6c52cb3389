//! The aarch64 release binary, run under qemu-aarch64-static, through a
//! full ADD/CHECK/DEL in namespaces: netlink and setns work there too. Root;
//! MYCELIUM_CNI_AARCH64_BIN names the binary (scripts/test.sh builds it).

mod common;

use common::{Netns, Node, pod_address, require_root};

#[test]
fn aarch64_binary_attaches_a_pod_under_qemu() {
    require_root();
    let binary = std::env::var("MYCELIUM_CNI_AARCH64_BIN")
        .expect("MYCELIUM_CNI_AARCH64_BIN must name the aarch64 binary (scripts/test.sh sets it)");
    let header = std::fs::read(&binary).expect("aarch64 binary");
    // ELF e_machine at offset 18: 183 is EM_AARCH64.
    assert_eq!(
        header.get(18..20),
        Some(&183u16.to_le_bytes()[..]),
        "{binary} is not aarch64"
    );
    let mut node = Node::standard();
    node.program = vec!["qemu-aarch64-static".into(), binary];
    let pod = Netns::new("-arm");
    // qemu-user translates rtnetlink but not NETLINK_NETFILTER: with the
    // source filter on, ADD must fail clearly, name the key, leave nothing.
    let before = (node.ns.state(), pod.state());
    let refused = node.add("ctr-arm", &pod, &node.conf("1.1.0"));
    let msg = refused.error(5);
    assert!(msg.contains("\"sourceFilter\": false"), "{msg}");
    assert_eq!(
        (node.ns.state(), pod.state()),
        before,
        "a refused ADD left state"
    );
    node.source_filter = false;
    let conf = node.conf("1.1.0");
    let result = node.add("ctr-arm", &pod, &conf).ok();
    let address = pod_address(&result);
    assert!(address.starts_with("5fd:a395:1a8d:501d:ff0f:"), "{address}");
    assert!(pod.ping(&node.address), "pod -> node");
    assert!(node.ns.ping(&address), "node -> pod");
    assert!(node.check("ctr-arm", &pod, &result, "1.1.0").ok().is_null());
    node.del("ctr-arm", &pod.path(), &conf).ok();
    node.del("ctr-arm", &pod.path(), &conf).ok();
    assert!(node.host_veths().is_empty());
}
