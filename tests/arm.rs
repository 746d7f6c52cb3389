//! The ARM release binaries under qemu-user through a full ADD/CHECK/DEL
//! in namespaces: netlink and setns work there too. Root; the binaries are
//! named by MYCELIUM_CNI_AARCH64_BIN and MYCELIUM_CNI_ARMV7_BIN
//! (scripts/test.sh builds them).

mod common;

use common::{Netns, Node, pod_address, require_root};

/// `variable` names the binary, `machine` is its ELF e_machine, `emulator`
/// the qemu-user program that runs it.
fn attaches_a_pod(variable: &str, machine: u16, emulator: &str, container: &str) {
    require_root();
    let binary = std::env::var(variable)
        .unwrap_or_else(|_| panic!("{variable} must name the binary (scripts/test.sh sets it)"));
    let header = std::fs::read(&binary).expect("binary");
    // ELF e_machine at offset 18.
    assert_eq!(
        header.get(18..20),
        Some(&machine.to_le_bytes()[..]),
        "{binary} is not for machine {machine}"
    );
    let mut node = Node::standard();
    node.program = vec![emulator.into(), binary];
    let pod = Netns::new("-arm");
    // qemu-user translates rtnetlink but not NETLINK_NETFILTER: with the
    // source filter on, ADD must fail clearly, name the key, leave nothing.
    let before = (node.ns.state(), pod.state());
    let refused = node.add(container, &pod, &node.conf("1.1.0"));
    let msg = refused.error(5);
    assert!(msg.contains("\"sourceFilter\": false"), "{msg}");
    assert_eq!(
        (node.ns.state(), pod.state()),
        before,
        "a refused ADD left state"
    );
    node.source_filter = false;
    // Egress NAT needs nf_tables too: the error names its key.
    let refused = node.add(container, &pod, &node.conf("1.1.0"));
    let msg = refused.error(5);
    assert!(msg.contains("\"egress\": \"overlay\""), "{msg}");
    node.egress = Some("overlay");
    let conf = node.conf("1.1.0");
    let result = node.add(container, &pod, &conf).assert_ok();
    let address = pod_address(&result);
    assert!(address.starts_with("5fd:a395:1a8d:501d:ff0f:"), "{address}");
    assert!(pod.ping(&node.address), "pod -> node");
    assert!(node.ns.ping(&address), "node -> pod");
    assert!(
        node.check(container, &pod, &result, "1.1.0")
            .assert_ok()
            .is_null()
    );
    node.del(container, &pod.path(), &conf).assert_ok();
    node.del(container, &pod.path(), &conf).assert_ok();
    assert!(node.host_veths().is_empty());
}

#[test]
fn aarch64_binary_attaches_a_pod_under_qemu() {
    // 183 is EM_AARCH64.
    attaches_a_pod(
        "MYCELIUM_CNI_AARCH64_BIN",
        183,
        "qemu-aarch64-static",
        "ctr-arm64",
    );
}

#[test]
fn armv7_binary_attaches_a_pod_under_qemu() {
    // 40 is EM_ARM.
    attaches_a_pod("MYCELIUM_CNI_ARMV7_BIN", 40, "qemu-arm-static", "ctr-armv7");
}
