//! overlayIngress on two simulated nodes whose overlay link arrives on the
//! interface the plugin is configured with, as Mycelium traffic arrives on
//! its TUN: a veth pair `mcovl0` between the nodes, each end holding its
//! node's overlay address (/7) and routing the other node's /64 across.
//! Root; `nft`, `ip6tables` and `strace` only inspect, break or kill.

mod common;

use common::{
    NODE_A, NODE_B, Netns, Node, Outcome, Server, binary, pod_address, require_root, tcp_get,
};
use serde_json::{Value, json};

const OVERLAY_IF: &str = "mcovl0";
const PORT: u16 = 8080;

struct Linked {
    a: Node,
    b: Node,
}

fn node_without_tun(address: &str) -> Node {
    let ns = Netns::new("-inode");
    ns.ip(&["link", "set", "lo", "up"]);
    Node {
        ns,
        address: address.into(),
        program: vec![binary()],
        source_filter: true,
        egress: None,
    }
}

impl Linked {
    fn new() -> Linked {
        let (a, b) = (node_without_tun(NODE_A), node_without_tun(NODE_B));
        a.ns.ip(&[
            "link", "add", OVERLAY_IF, "type", "veth", "peer", "name", OVERLAY_IF, "netns",
            &b.ns.name,
        ]);
        for (node, own, other_prefix, other_gw) in [
            (&a, "fe80::a", "4aa:1:2:3::/64", "fe80::b"),
            (&b, "fe80::b", "5fd:a395:1a8d:501d::/64", "fe80::a"),
        ] {
            let overlay = format!("{}/7", node.address);
            let link_local = format!("{own}/64");
            for address in [&overlay, &link_local] {
                node.ns
                    .ip(&["-6", "addr", "add", address, "dev", OVERLAY_IF, "nodad"]);
            }
            node.ns.ip(&["link", "set", OVERLAY_IF, "up"]);
            let route = ["-6", "route", "add", other_prefix, "via", other_gw];
            node.ns.ip(&[&route[..], &["dev", OVERLAY_IF]].concat());
        }
        Linked { a, b }
    }
}

fn conf(network: &str, ingress: Value) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": network,
        "type": "mycelium-cni",
        "myceliumInterface": OVERLAY_IF,
        "overlayIngress": ingress,
    })
}

/// A pod attached to `conf` on `node`: its namespace and address.
fn pod(node: &Node, container: &str, conf: &Value) -> (Netns, String, Value) {
    let ns = Netns::new("-ipod");
    let result = node.add(container, &ns, conf).assert_ok();
    (ns, pod_address(&result), result)
}

/// The packets the network's drop rule counted on `node`.
fn dropped(node: &Node, network: &str) -> u64 {
    let chain = format!("overlay-in-{network}");
    let listing = node
        .ns
        .run(&["nft", "list", "chain", "inet", "mycelium-cni", &chain]);
    let after = listing.split("counter packets ").nth(1).unwrap_or("0");
    after.split(' ').next().unwrap_or("0").parse().unwrap_or(0)
}

#[test]
fn open_lets_the_whole_overlay_in() {
    require_root();
    let nodes = Linked::new();
    let (a1_ns, a1, _) = pod(&nodes.a, "ctr-a1", &conf("mcnet", json!("open")));
    let (b1, _, _) = pod(&nodes.b, "ctr-b1", &conf("mcnet", json!("open")));
    let _server = Server::start(&a1_ns, PORT, "pod");
    assert!(b1.ping(&a1), "open: B's pod -> A's pod (ICMP)");
    assert!(tcp_get(&b1, &a1, PORT).starts_with("pod"), "open: TCP");
    assert!(nodes.b.ns.ping(&a1), "open: node B -> A's pod");
}

#[test]
fn replies_lets_in_only_answers_the_node_and_its_pods() {
    require_root();
    let nodes = Linked::new();
    let replies = conf("mcnet", json!("replies"));
    let (a1_ns, a1, _) = pod(&nodes.a, "ctr-a1", &replies);
    let (a2_ns, _, _) = pod(&nodes.a, "ctr-a2", &replies);
    let (b1_ns, b1, _) = pod(&nodes.b, "ctr-b1", &conf("mcnet", json!("open")));
    let _on_a1 = Server::start(&a1_ns, PORT, "pod");
    let _on_b1 = Server::start(&b1_ns, PORT, "pod");

    assert!(a1_ns.ping(&b1), "replies: A's pod -> B's pod (ICMP)");
    assert!(
        tcp_get(&a1_ns, &b1, PORT).starts_with("pod"),
        "replies: A's pod -> B's pod (TCP)"
    );
    let before = dropped(&nodes.a, "mcnet");
    assert!(!b1_ns.ping(&a1), "replies: B's pod reached A's pod (ICMP)");
    assert!(
        tcp_get(&b1_ns, &a1, PORT).is_empty(),
        "replies: B's pod reached A's pod (TCP)"
    );
    assert!(!nodes.b.ns.ping(&a1), "replies: node B reached A's pod");
    assert!(
        dropped(&nodes.a, "mcnet") >= before + 3,
        "replies: drops not counted"
    );
    assert!(nodes.a.ns.ping(&a1), "replies: node A -> its pod");
    assert!(a2_ns.ping(&a1), "replies: a second pod on A -> the pod");
    assert!(
        tcp_get(&a2_ns, &a1, PORT).starts_with("pod"),
        "replies: same-node TCP"
    );

    // A NodePort-style Service on node A: DNAT to the pod, open on purpose.
    let target = format!("[{a1}]:{PORT}");
    let dnat = [
        "ip6tables",
        "-w",
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-d",
        NODE_A,
        "-p",
        "tcp",
        "--dport",
        "30080",
        "-j",
        "DNAT",
        "--to-destination",
        &target,
    ];
    nodes.a.ns.run(&dnat);
    assert!(
        tcp_get(&b1_ns, NODE_A, 30080).starts_with("pod"),
        "replies: NodePort-style DNAT from node B's pod"
    );
}

#[test]
fn listed_prefixes_may_connect_others_may_not() {
    require_root();
    let nodes = Linked::new();
    let listed = conf("mcnet", json!(["4aa:1:2:3::/64", "4dd::/16"]));
    let (a1_ns, a1, _) = pod(&nodes.a, "ctr-a1", &listed);
    let (b1_ns, _, _) = pod(&nodes.b, "ctr-b1", &conf("mcnet", json!("open")));
    let _server = Server::start(&a1_ns, PORT, "pod");
    assert!(b1_ns.ping(&a1), "listed: B's /64 -> A's pod");
    assert!(
        tcp_get(&b1_ns, &a1, PORT).starts_with("pod"),
        "listed: TCP from B's /64"
    );
    // Two more sources on node B, both routed back from A: one listed, one not.
    for (source, prefix) in [("4dd:1::1", "4dd::/16"), ("4cc:1:2:3::1", "4cc::/16")] {
        nodes
            .b
            .ns
            .ip(&["-6", "addr", "add", &format!("{source}/128"), "dev", "lo"]);
        let via = [
            "-6", "route", "add", prefix, "via", "fe80::b", "dev", OVERLAY_IF,
        ];
        nodes.a.ns.ip(&via);
    }
    let from = |source: &str| {
        nodes
            .b
            .ns
            .exec(&["ping", "-6", "-c", "1", "-W", "2", "-I", source, &a1])
    };
    assert!(
        from("4dd:1::1"),
        "listed: a source in a listed /16 was blocked"
    );
    assert!(
        !from("4cc:1:2:3::1"),
        "listed: a source in no listed prefix got through"
    );
}

#[test]
fn two_networks_on_one_node_each_as_configured() {
    require_root();
    let nodes = Linked::new();
    let (_o, open_pod, _) = pod(&nodes.a, "ctr-open", &conf("mcopen", json!("open")));
    let (_r, replies_pod, _) = pod(&nodes.a, "ctr-rep", &conf("mcrep", json!("replies")));
    let (b1_ns, b1, _) = pod(&nodes.b, "ctr-b1", &conf("mcopen", json!("open")));
    assert!(
        b1_ns.ping(&open_pod),
        "two networks: the open one is reachable"
    );
    assert!(
        !b1_ns.ping(&replies_pod),
        "two networks: the replies one is not"
    );
    assert!(
        _r.ping(&b1),
        "two networks: the replies pod still reaches out"
    );
}

/// DEL leaves nothing of the pod; GC removes what killed ADDs left; a pod
/// of an earlier version (default interface group) comes under a new
/// setting at the next GC.
#[test]
fn del_and_gc_leave_nothing_and_gc_adopts_earlier_pods() {
    require_root();
    let nodes = Linked::new();
    let node = &nodes.a;
    let replies = conf("mcnet", json!("replies"));
    // Links and main-table routes: what a pod could leave behind. (The
    // first ADD turns forwarding on, which adds anycast routes for good.)
    let state = || {
        let links = node.ns.ip(&["-o", "link", "show"]);
        let names: Vec<&str> = links.lines().filter_map(|l| l.split(": ").nth(1)).collect();
        format!("{names:?}\n{}", node.ns.ip(&["-6", "route", "show"]))
    };
    let before = state();
    let (p1, a1, _) = pod(node, "ctr-1", &replies);
    node.del("ctr-1", &p1.path(), &replies).assert_ok();
    assert_eq!(state(), before, "DEL left links or routes");
    // DEL leaves nf_tables alone: the pod's address stays only in the
    // source filter's fast path sets (an element of a veth that is gone,
    // which GC removes below), never in a chain.
    let ruleset = node.ns.run(&["nft", "list", "ruleset"]);
    let chains = ruleset.find("chain ").map_or("", |at| &ruleset[at..]);
    assert!(!chains.contains(&a1), "a chain names the pod: {ruleset}");

    // Killed after the host veth got its alias and before ADD finished;
    // the pods' namespaces stay, as a runtime's do.
    let requests = common::add_requests(true);
    let labelled = common::request_number(&requests, "alias of the host veth");
    let mut killed = Vec::new();
    for n in labelled + 1..=requests.len() {
        let pod = Netns::new("-ikill");
        let container = format!("ctr-kill-{n}");
        let path = pod.path();
        let outcome = node.killed_add_at_request(n, &container, &path, &replies);
        assert_ne!(outcome.code, 0, "request {n}: ADD was not killed");
        killed.push(pod);
    }
    assert_eq!(
        node.host_veths().len(),
        requests.len() - labelled,
        "killed ADDs left no veths"
    );
    gc(node, &replies, &[]).assert_ok();
    assert!(
        node.host_veths().is_empty(),
        "GC left {:?}",
        node.host_veths()
    );
    assert_eq!(state(), before, "GC left links or routes");
    let ruleset = node.ns.run(&["nft", "list", "ruleset"]);
    assert!(
        !ruleset.contains(&a1),
        "GC left the pod's fast path element: {ruleset}"
    );

    // An earlier version's pod: open network, host veth in group 0.
    let open = conf("mcnet", json!("open"));
    let (_old_ns, old, _) = pod(node, "ctr-old", &open);
    let veth = node.host_veths().pop().expect("host veth");
    node.ns
        .ip(&["link", "set", "dev", &veth, "group", "default"]);
    let (b1_ns, _, _) = pod(&nodes.b, "ctr-b1", &open);
    assert!(b1_ns.ping(&old), "earlier pod reachable while open");
    gc(node, &replies, &["ctr-old"]).assert_ok();
    assert!(!b1_ns.ping(&old), "the earlier pod is still open after GC");
    assert!(node.ns.ping(&old), "node -> earlier pod after GC");
}

fn gc(node: &Node, conf: &Value, keep: &[&str]) -> Outcome {
    let mut conf = conf.clone();
    conf["cniVersion"] = "1.1.0".into();
    let valid: Vec<Value> = keep
        .iter()
        .map(|id| json!({"containerID": id, "ifname": "eth0"}))
        .collect();
    conf["cni.dev/valid-attachments"] = valid.into();
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")];
    node.run(&env, &conf.to_string())
}

#[test]
fn check_fails_when_the_ruleset_was_flushed_and_add_restores() {
    require_root();
    let nodes = Linked::new();
    let replies = conf("mcnet", json!("replies"));
    let (a1_ns, a1, result) = pod(&nodes.a, "ctr-a1", &replies);
    let (b1_ns, _, _) = pod(&nodes.b, "ctr-b1", &conf("mcnet", json!("open")));
    let mut check = replies.clone();
    check["prevResult"] = result;
    let run_check = || {
        nodes
            .a
            .cni("CHECK", "ctr-a1", &a1_ns.path(), "eth0", &check)
    };
    run_check().assert_ok();
    assert!(!b1_ns.ping(&a1), "before the flush");
    nodes.a.ns.run(&["nft", "flush", "ruleset"]);
    let failed = run_check().error(11);
    assert!(failed.contains("next ADD"), "{failed}");
    assert!(b1_ns.ping(&a1), "the flush did not open the pod");
    let (_a2, _, _) = pod(&nodes.a, "ctr-a2", &replies);
    run_check().assert_ok();
    assert!(!b1_ns.ping(&a1), "the next ADD did not restore the control");
}

/// 10,000 listed prefixes (every node's /64 of a large cluster): the first
/// ADD installs them all in the network's set, a listed source connects
/// and an unlisted one does not, and a shorter list replaces the set whole.
#[test]
fn ten_thousand_listed_prefixes_install_with_one_add() {
    require_root();
    let nodes = Linked::new();
    // 9,998 /64s of 4bb::/16, node B's /64 and 4dd::/16.
    let mut prefixes: Vec<String> = (0..9_998u32)
        .map(|i| format!("4bb:{:x}:{:x}::/64", i >> 8, i & 0xff))
        .collect();
    prefixes.extend(["4aa:1:2:3::/64".to_string(), "4dd::/16".to_string()]);
    let listed = conf("mcbig", json!(prefixes));
    let (a1_ns, a1, _) = pod(&nodes.a, "ctr-big", &listed);
    let set = nodes
        .a
        .ns
        .run(&["nft", "list", "set", "inet", "mycelium-cni", "allow-mcbig"]);
    let elements = set.matches("4bb:").count();
    assert_eq!(elements, 9_998, "the set holds every listed 4bb:: /64");
    assert!(
        set.contains("4aa:1:2:3::/64") && set.contains("4dd::/16"),
        "{set:.400}"
    );
    let (b1_ns, _, _) = pod(&nodes.b, "ctr-bigb", &conf("mcbig", json!("open")));
    assert!(b1_ns.ping(&a1), "a listed /64 connects");
    nodes
        .b
        .ns
        .ip(&["-6", "addr", "add", "4cc:1:2:3::1/128", "dev", "lo"]);
    let via = [
        "-6", "route", "add", "4cc::/16", "via", "fe80::b", "dev", OVERLAY_IF,
    ];
    nodes.a.ns.ip(&via);
    let unlisted = nodes.b.ns.exec(&[
        "ping",
        "-6",
        "-c",
        "1",
        "-W",
        "2",
        "-I",
        "4cc:1:2:3::1",
        &a1,
    ]);
    assert!(!unlisted, "an unlisted source got through");
    // A shorter list: the set's content is replaced, in the next ADD's batch.
    let shorter = conf("mcbig", json!(["4dd::/16"]));
    let other = Netns::new("-big2");
    nodes.a.add("ctr-big2", &other, &shorter).assert_ok();
    let set = nodes
        .a
        .ns
        .run(&["nft", "list", "set", "inet", "mycelium-cni", "allow-mcbig"]);
    assert!(
        !set.contains("4bb:") && set.contains("4dd::/16"),
        "{set:.400}"
    );
    assert!(!b1_ns.ping(&a1), "B's /64 is no longer listed");
    drop(a1_ns);
}
