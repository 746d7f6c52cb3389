//! NetworkPolicy on k3s: its embedded controller (kube-router's) enforces
//! policy with netfilter rules on pod addresses in the node's FORWARD path.
//! This shows, on two simulated nodes, what that relies on from us: pod
//! traffic, local and from another node, crosses the node's ip6tables
//! FORWARD chain; a rule there shaped like the controller's (a per-pod
//! chain, replies allowed, an allowed peer, the rest dropped) decides what
//! reaches the pod; removing it restores traffic; and our source filter
//! keeps working beside it. The controller itself is not run here. Root.

mod common;

use common::{Cluster, NODE_A, Netns, Node, pod_address, require_root, source_filter_drops};

fn forward_rule(node: &Node, args: &[&str]) {
    let mut all = vec!["ip6tables", "-w"];
    all.extend_from_slice(args);
    node.ns.run(&all);
}

/// Packets counted by the FORWARD rule that matches `source` -> `dest`
/// with no target (a counting rule).
fn forwarded(node: &Node, source: &str, dest: &str) -> u64 {
    let listing = node
        .ns
        .run(&["ip6tables", "-w", "-L", "FORWARD", "-v", "-x", "-n"]);
    listing
        .lines()
        .filter(|l| l.contains(&format!("{source}  ")) || l.contains(&format!("{source}/128")))
        .filter(|l| l.contains(dest))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .next()
        .unwrap_or_else(|| panic!("no counting rule {source} -> {dest}: {listing}"))
}

#[test]
fn pod_traffic_crosses_forward_where_network_policy_rules_decide() {
    require_root();
    let cluster = Cluster::new();
    let (a, b) = (&cluster.a, &cluster.b);
    let (target, neighbour, remote) = (Netns::new("-pt"), Netns::new("-pn"), Netns::new("-pr"));
    let target_ip = pod_address(&a.add("ctr-target", &target, &a.conf("1.0.0")).assert_ok());
    let neighbour_ip = pod_address(
        &a.add("ctr-neighbour", &neighbour, &a.conf("1.0.0"))
            .assert_ok(),
    );
    let remote_ip = pod_address(&b.add("ctr-remote", &remote, &b.conf("1.0.0")).assert_ok());

    // Pod-to-pod on one node and from another node: both through FORWARD.
    forward_rule(a, &["-A", "FORWARD", "-s", &neighbour_ip, "-d", &target_ip]);
    forward_rule(a, &["-A", "FORWARD", "-s", &remote_ip, "-d", &target_ip]);
    forward_rule(a, &["-A", "FORWARD", "-s", &target_ip, "-d", &remote_ip]);
    assert!(neighbour.ping(&target_ip) && remote.ping(&target_ip) && target.ping(&remote_ip));
    assert!(
        forwarded(a, &neighbour_ip, &target_ip) >= 1,
        "same node: not via FORWARD"
    );
    assert!(
        forwarded(a, &remote_ip, &target_ip) >= 1,
        "other node: not via FORWARD"
    );
    assert!(
        forwarded(a, &target_ip, &remote_ip) >= 1,
        "outbound: not via FORWARD"
    );

    // A policy as the controller writes it: the target admits replies and
    // the neighbour; everything else to it is dropped.
    for rule in [
        vec!["-N", "MCNI-POLICY"],
        vec!["-N", "MCNI-POD-FW"],
        vec!["-I", "FORWARD", "1", "-j", "MCNI-POLICY"],
        vec!["-A", "MCNI-POLICY", "-d", &target_ip, "-j", "MCNI-POD-FW"],
        vec![
            "-A",
            "MCNI-POD-FW",
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
            "-j",
            "ACCEPT",
        ],
        vec!["-A", "MCNI-POD-FW", "-s", &neighbour_ip, "-j", "ACCEPT"],
        vec!["-A", "MCNI-POD-FW", "-j", "DROP"],
    ] {
        forward_rule(a, &rule);
    }
    assert!(
        neighbour.ping(&target_ip),
        "policy: the allowed pod is blocked"
    );
    assert!(
        !remote.ping(&target_ip),
        "policy: the other node's pod got through"
    );
    assert!(
        target.ping(&remote_ip),
        "policy: the target's own connection lost its replies"
    );

    // A plain drop on the pod's address blocks everyone; removing it restores.
    forward_rule(a, &["-I", "MCNI-POD-FW", "1", "-j", "DROP"]);
    assert!(
        !neighbour.ping(&target_ip),
        "drop rule: same-node traffic got through"
    );
    forward_rule(a, &["-D", "MCNI-POD-FW", "1"]);
    forward_rule(a, &["-D", "FORWARD", "-j", "MCNI-POLICY"]);
    assert!(
        neighbour.ping(&target_ip) && remote.ping(&target_ip),
        "rules removed"
    );

    // Side by side: the source filter still drops a pod sending as another.
    forward_rule(a, &["-I", "FORWARD", "1", "-j", "MCNI-POLICY"]);
    let dropped = source_filter_drops(a).1;
    let forged = format!("{target_ip}/128");
    neighbour.ip(&["-6", "addr", "add", &forged, "dev", "eth0", "nodad"]);
    let spoof = [
        "ping", "-6", "-c", "1", "-W", "1", "-I", &target_ip, &remote_ip,
    ];
    assert!(!neighbour.exec(&spoof), "a forged source got a reply");
    assert!(
        source_filter_drops(a).1 > dropped,
        "the source filter did not drop the forged packet"
    );
    neighbour.ip(&["-6", "addr", "del", &forged, "dev", "eth0"]);
    assert!(
        neighbour.ping(&target_ip) && target.ping(NODE_A),
        "after the spoof"
    );
}
