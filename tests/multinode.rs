//! Two simulated nodes, each with its own /64, joined by routes standing in
//! for the overlay: pods on both reach each other and the other node, both
//! directions, with the real binary on each node. Root.

mod common;

use common::{Cluster, NODE_A, NODE_B, Netns, pod_address, require_root};

#[test]
fn pods_on_two_nodes_reach_each_other() {
    require_root();
    let cluster = Cluster::new();
    let (pod_a, pod_b) = (Netns::new("-ma"), Netns::new("-mb"));
    let result_a = cluster
        .a
        .add("ctr-a", &pod_a, &cluster.a.conf("1.0.0"))
        .assert_ok();
    let result_b = cluster
        .b
        .add("ctr-b", &pod_b, &cluster.b.conf("1.0.0"))
        .assert_ok();
    let (address_a, address_b) = (pod_address(&result_a), pod_address(&result_b));
    assert!(
        address_a.starts_with("5fd:a395:1a8d:501d:ff0f:"),
        "{address_a}"
    );
    assert!(address_b.starts_with("4aa:1:2:3:ff0f:"), "{address_b}");

    assert!(pod_a.ping(&address_b), "pod a -> pod b across nodes");
    assert!(pod_b.ping(&address_a), "pod b -> pod a across nodes");
    assert!(pod_a.ping(NODE_B), "pod a -> node b");
    assert!(pod_b.ping(NODE_A), "pod b -> node a");
    assert!(cluster.b.ns.ping(&address_a), "node b -> pod a");
    assert!(cluster.a.ns.ping(&address_b), "node a -> pod b");

    cluster
        .a
        .del("ctr-a", &pod_a.path(), &cluster.a.conf("1.0.0"))
        .assert_ok();
    assert!(!pod_b.ping(&address_a), "pod a still answers after DEL");
    cluster
        .b
        .del("ctr-b", &pod_b.path(), &cluster.b.conf("1.0.0"))
        .assert_ok();
    assert!(cluster.a.host_veths().is_empty() && cluster.b.host_veths().is_empty());
}
