//! The source filter (nf_tables `table inet mycelium-cni`): a pod with root
//! in its own namespace cannot send as anyone else, through the node, to
//! its neighbours or into the overlay; legitimate traffic is untouched.
//! Root; `nft` only inspects and breaks the state, the plugin builds it.

mod common;

use common::{Netns, Node, TUN, pod_address, require_root, source_filter_drops};
use serde_json::Value;

const TABLE: &str = "mycelium-cni";

/// Counts, in the node, packets with one of `sources` leaving through the
/// TUN (the node's own MLD reports and the like are not counted).
fn count_leaving_tun(node: &Node, sources: &[&str]) {
    let rules = format!(
        "add table inet mcni-out {{ chain out {{ type filter hook postrouting priority 0; policy accept; oifname \"{TUN}\" ip6 saddr {{ {} }} counter; }}; }}",
        sources.join(", ")
    );
    node.ns.run(&["nft", &rules]);
}

fn left_through_tun(node: &Node) -> u64 {
    let table = node.ns.run(&["nft", "list", "table", "inet", "mcni-out"]);
    let after = table.split("counter packets ").nth(1).unwrap();
    after.split(' ').next().unwrap().parse().unwrap()
}

/// A test table in `ns` that counts ICMPv6 echo requests arriving after
/// the source filter (a later priority): what got through.
fn count_echo_requests(ns: &Netns) {
    let rules = "add table inet mcni-test { chain count { type filter hook prerouting priority 0; policy accept; icmpv6 type echo-request counter; ip protocol icmp counter; }; }";
    ns.run(&["nft", rules]);
}

fn echo_requests_seen(ns: &Netns) -> (u64, u64) {
    let counts = common::counted(ns, "mcni-test");
    (counts[0], counts[1])
}

#[test]
fn a_pod_cannot_send_as_anyone_else() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.0.0");
    let (pod_a, pod_b) = (Netns::new("-spoof"), Netns::new("-victim"));
    let result_a = node.add("ctr-spoof", &pod_a, &conf).assert_ok();
    let address_a = pod_address(&result_a);
    let address_b = pod_address(&node.add("ctr-victim", &pod_b, &conf).assert_ok());
    let overlay_target = "5fc:1:2:3::1";
    assert!(
        pod_a.ping(&address_b) && pod_a.ping(&node.address),
        "before"
    );
    count_echo_requests(&pod_b);
    count_echo_requests(&node.ns);
    let (b_before, node_before) = (echo_requests_seen(&pod_b), echo_requests_seen(&node.ns));
    let (_, dropped_before) = source_filter_drops(&node);

    let forged = [
        address_b.as_str(),              // the neighbour pod
        node.address.as_str(),           // the node itself
        "5fd:a395:1a8d:501d:ff0f::dead", // unused, inside the node's /64
        "5fc:1::77",                     // another node's /64
        "2001:db8::1",                   // outside the overlay
    ];
    count_leaving_tun(&node, &forged);
    let mut attempts = 0;
    for source in forged {
        pod_a.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{source}/128"),
            "dev",
            "eth0",
            "nodad",
        ]);
        // (To its own new address the pod would answer itself.)
        let targets = [address_b.as_str(), node.address.as_str(), overlay_target];
        for target in targets.into_iter().filter(|t| *t != source) {
            let sent = pod_a.exec(&["ping", "-6", "-c", "1", "-W", "1", "-I", source, target]);
            assert!(!sent, "{source} -> {target} got a reply");
            attempts += 1;
        }
        pod_a.ip(&["-6", "addr", "del", &format!("{source}/128"), "dev", "eth0"]);
    }
    assert_eq!(
        echo_requests_seen(&pod_b),
        b_before,
        "pod b received forged packets"
    );
    assert_eq!(
        echo_requests_seen(&node.ns),
        node_before,
        "the node received forged packets"
    );
    assert_eq!(
        left_through_tun(&node),
        0,
        "forged packets left through the TUN"
    );
    let (_, dropped_after) = source_filter_drops(&node);
    assert!(
        dropped_after >= dropped_before + attempts,
        "drop counter {dropped_before} -> {dropped_after} for {attempts} attempts"
    );

    // IPv4 out of the pod, with the node forwarding IPv4: dropped at entry.
    let mac = node.ns.run(&[
        "cat",
        &format!("/sys/class/net/{}/address", host_veth(&result_a)),
    ]);
    node.ns.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    pod_a.ip(&["addr", "add", "10.77.0.2/24", "dev", "eth0"]);
    pod_a.ip(&[
        "neigh",
        "add",
        "10.77.0.1",
        "lladdr",
        mac.trim(),
        "dev",
        "eth0",
    ]);
    let (ipv4_before, _) = source_filter_drops(&node);
    assert!(!pod_a.exec(&["ping", "-4", "-c", "2", "-W", "1", "10.77.0.1"]));
    assert_eq!(
        source_filter_drops(&node).0,
        ipv4_before + 2,
        "IPv4 not dropped"
    );
    assert_eq!(
        echo_requests_seen(&node.ns).1,
        node_before.1,
        "IPv4 reached the node"
    );

    // The same pod's own traffic still flows.
    assert!(pod_a.ping(&address_b) && pod_a.ping(&node.address), "after");
    assert!(
        node.ns.ping(&address_a) && pod_b.ping(&address_a),
        "after, inbound"
    );
}

fn host_veth(result: &Value) -> String {
    result["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Exactly one table, one chain and the two rules after 64 racing ADDs on
/// a node that had none.
#[test]
fn racing_adds_on_a_fresh_node_make_one_filter() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.0.0");
    let pods: Vec<Netns> = (0..64).map(|_| Netns::new("-race")).collect();
    std::thread::scope(|scope| {
        for (i, pod) in pods.iter().enumerate() {
            let (node, conf) = (&node, &conf);
            scope.spawn(move || node.add(&format!("ctr-{i}"), pod, conf).assert_ok());
        }
    });
    let ruleset = node.ns.run(&["nft", "list", "ruleset"]);
    let count = |needle: &str| ruleset.matches(needle).count();
    assert_eq!(count(&format!("table inet {TABLE} ")), 1, "{ruleset}");
    assert_eq!(count("chain pod-source "), 1, "{ruleset}");
    // The filter's six drop rules (the egress chain drops nothing).
    assert_eq!(count(" drop"), 6, "{ruleset}");
    assert!(node.ns.run(&["nft", "list", "tables"]).lines().count() == 1);
    for (i, pod) in pods.iter().enumerate() {
        node.del(&format!("ctr-{i}"), &pod.path(), &conf)
            .assert_ok();
    }
    // DEL leaves the filter: other pods may still use it.
    assert_eq!(source_filter_drops(&node), (0, 0));
}

/// CHECK fails (code 11) when the table is deleted or altered; the next
/// ADD restores it; STATUS does not fail for it.
#[test]
fn a_deleted_or_altered_filter_is_restored_by_the_next_add() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.1.0");
    let (pod, other) = (Netns::new("-chk"), Netns::new("-chk2"));
    let result = node.add("ctr-chk", &pod, &conf).assert_ok();
    assert!(
        node.check("ctr-chk", &pod, &result, "1.1.0")
            .assert_ok()
            .is_null()
    );

    node.ns.run(&["nft", "delete", "table", "inet", TABLE]);
    let msg = node.check("ctr-chk", &pod, &result, "1.1.0").error(11);
    assert!(msg.contains("is missing"), "{msg}");
    let status = node.cni("STATUS", "", "", "", &conf);
    assert_eq!(status.code, 0, "STATUS failed: {}", status.stdout);
    node.add("ctr-chk2", &other, &conf).assert_ok();
    assert!(
        node.check("ctr-chk", &pod, &result, "1.1.0")
            .assert_ok()
            .is_null()
    );

    node.ns
        .run(&["nft", "flush", "chain", "inet", TABLE, "pod-source"]);
    node.ns.run(&[
        "nft",
        "add",
        "rule",
        "inet",
        TABLE,
        "pod-source",
        "counter",
        "accept",
    ]);
    let msg = node.check("ctr-chk", &pod, &result, "1.1.0").error(11);
    assert!(msg.contains("altered"), "{msg}");
    node.del("ctr-chk2", &other.path(), &conf).assert_ok();
    node.add("ctr-chk2", &other, &conf).assert_ok();
    assert!(
        node.check("ctr-chk", &pod, &result, "1.1.0")
            .assert_ok()
            .is_null()
    );
    let table = node
        .ns
        .run(&["nft", "list", "chain", "inet", TABLE, "pod-source"]);
    let accepting = table.lines().filter(|l| l.trim_end().ends_with(" accept"));
    let (fast, other): (Vec<&str>, Vec<&str>) = accepting.partition(|l| l.contains(" @pods"));
    assert_eq!(other.len(), 0, "the added accept rule is gone: {table}");
    assert_eq!(fast.len(), 2, "the fast path's two rules: {table}");
    assert_eq!(table.matches("counter").count(), 6, "{table}");
}

/// `"sourceFilter": false`: nothing is created in nf_tables, everything
/// else works, and CHECK does not ask for the table.
#[test]
fn filter_off_creates_nothing() {
    require_root();
    let mut node = Node::standard();
    node.source_filter = false;
    // Egress NAT needs a chain of its own (see tests/egress.rs).
    node.egress = Some("overlay");
    let conf = node.conf("1.0.0");
    let pod = Netns::new("-off");
    let result = node.add("ctr-off", &pod, &conf).assert_ok();
    let address = pod_address(&result);
    assert!(pod.ping(&node.address) && node.ns.ping(&address));
    assert!(
        node.check("ctr-off", &pod, &result, "1.0.0")
            .assert_ok()
            .is_null()
    );
    assert_eq!(node.ns.run(&["nft", "list", "ruleset"]).trim(), "");
    node.del("ctr-off", &pod.path(), &conf).assert_ok();
}

/// With the filter on and nf_tables refusing the table (no CAP_NET_ADMIN
/// here), ADD fails, names the key, and leaves nothing behind.
#[test]
fn add_fails_clearly_when_nf_tables_refuses() {
    require_root();
    let mut node = Node::standard();
    node.program = [
        "setpriv",
        "--inh-caps=-net_admin",
        "--bounding-set=-net_admin",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([common::binary()])
    .collect();
    let conf = node.conf("1.0.0");
    let pod = Netns::new("-nocap");
    let before = (node.ns.state(), pod.state());
    let msg = node.add("ctr-nocap", &pod, &conf).error(5);
    assert!(
        msg.contains("source filter") && msg.contains("\"sourceFilter\": false"),
        "{msg}"
    );
    assert_eq!((node.ns.state(), pod.state()), before);
    assert_eq!(node.ns.run(&["nft", "list", "ruleset"]).trim(), "");
}

/// On a node without the filter, ADD killed just before its nf_tables batch
/// leaves no table and no veth; killed just after, the table is whole; the
/// next ADD makes the veth.
#[test]
fn add_killed_before_the_filter_batch_leaves_nothing() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.0.0");
    let pod = Netns::new("-kbatch");
    let path = pod.path();
    let requests = common::add_requests(false);
    let killed = node.killed_add_before(&requests, "nf_tables batch", "ctr-kbatch", &path, &conf);
    assert_ne!(killed.code, 0, "ADD was not killed");
    assert_eq!(node.ns.run(&["nft", "list", "ruleset"]).trim(), "");
    assert!(node.host_veths().is_empty());
    let killed = node.killed_add_before(
        &requests,
        "CNI_IFNAME in the pod",
        "ctr-kbatch",
        &path,
        &conf,
    );
    assert_ne!(killed.code, 0, "ADD was not killed after the batch");
    assert_eq!(
        source_filter_drops(&node),
        (0, 0),
        "the batch applied whole"
    );
    assert!(node.host_veths().is_empty());
    node.add("ctr-kbatch", &pod, &conf).assert_ok();
    node.del("ctr-kbatch", &path, &conf).assert_ok();
}
