//! Egress (`"egress": "nat"`, the default): pods reach what their node
//! reaches, IPv4 and IPv6, masqueraded to the node's uplink address, while
//! traffic into the overlay keeps the pod's own address. Each node here has
//! an "internet" namespace behind an uplink veth (IPv4 and IPv6), with
//! servers that only the node can route to. Root; `nft` only inspects and
//! breaks the state.

mod common;

use common::{
    Cluster, NET_V4, NET_V6, NODE_V4, NODE_V6, Netns, Node, Server, Uplink, pod_address,
    require_root, source_filter_drops, tcp_get,
};
use serde_json::Value;
use std::process::{Child, Command, Stdio};

/// What the test resolver answers for every A query.
const RESOLVED: &str = "203.0.113.80";
const POOL: &str = "198.18.0.0/16";

/// A DNS server on NET_V4:53 (UDP, IPv4 only) answering every A query with
/// RESOLVED; stopped on drop.
struct Resolver {
    child: Child,
}

impl Resolver {
    fn start(ns: &Netns) -> Resolver {
        use std::io::BufRead;
        let script = format!(
            "import socket, struct\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('{NET_V4}', 53))\n\
             print('ready', flush=True)\n\
             while True:\n\
             \x20   q, peer = s.recvfrom(512)\n\
             \x20   end = q.index(b'\\0', 12) + 5\n\
             \x20   head = q[:2] + b'\\x81\\x80' + q[4:6] + b'\\x00\\x01\\x00\\x00\\x00\\x00'\n\
             \x20   answer = b'\\xc0\\x0c\\x00\\x01\\x00\\x01' + struct.pack('>IH', 60, 4) + socket.inet_aton('{RESOLVED}')\n\
             \x20   s.sendto(head + q[12:end] + answer, peer)\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn resolver");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("resolver stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("resolver ready");
        assert_eq!(line.trim(), "ready");
        Resolver { child }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resolves `name` from `ns` through the server at NET_V4, as CoreDNS's
/// forwarder would: one A query over UDP; the address, or "" on failure.
fn resolve(ns: &Netns, name: &str) -> String {
    let script = format!(
        "import socket, struct\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.settimeout(3)\n\
         labels = b''.join(bytes([len(p)]) + p.encode() for p in '{name}'.split('.'))\n\
         s.sendto(b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00' + labels + b'\\0\\x00\\x01\\x00\\x01', ('{NET_V4}', 53))\n\
         r = s.recv(512)\n\
         print(socket.inet_ntoa(r[-4:]), end='')\n"
    );
    let output = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", &script])
        .output()
        .expect("spawn resolver client");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The pod's IPv4 addresses on eth0.
fn ipv4_of(pod: &Netns) -> Vec<String> {
    let text = pod.ip(&["-4", "-o", "addr", "show", "dev", "eth0"]);
    text.split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .map(|cidr| cidr.split('/').next().unwrap_or_default().to_string())
        .into_iter()
        .collect()
}

fn in_pool(address: &str) -> bool {
    let network: ipnetwork::Ipv4Network = POOL.parse().unwrap();
    address.parse().is_ok_and(|a| network.contains(a))
}

/// Links, addresses and main-table routes of both families in the node:
/// what a pod could leave behind.
fn node_state(node: &Node) -> String {
    let links = node.ns.ip(&["-o", "link", "show"]);
    let names: Vec<&str> = links.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    format!(
        "{names:?}\n{}\n{}\n{}",
        node.ns.ip(&["-o", "addr", "show"]),
        node.ns.ip(&["-4", "route", "show"]),
        node.ns.ip(&["-6", "route", "show"])
    )
}

#[test]
fn default_egress_reaches_ipv4_and_ipv6_servers_as_the_node() {
    require_root();
    let node = Node::standard();
    let uplink = Uplink::new(&node);
    let _server = Server::start(&uplink.net, 8080, "outside");
    let conf = node.conf("1.1.0");
    let pod = Netns::new("-egr");
    let result = node.add("ctr-egr", &pod, &conf).assert_ok();
    let ips: Vec<&str> = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| ip["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        ips.len(),
        1,
        "only the overlay address is published: {ips:?}"
    );
    assert!(ips[0].starts_with("5fd:"), "{ips:?}");
    let ipv4 = ipv4_of(&pod);
    assert!(ipv4.len() == 1 && in_pool(&ipv4[0]), "pod IPv4 {ipv4:?}");

    assert_eq!(
        tcp_get(&pod, NET_V4, 8080),
        format!("outside ::ffff:{NODE_V4}"),
        "IPv4 server sees the node's uplink address"
    );
    assert_eq!(
        tcp_get(&pod, NET_V6, 8080),
        format!("outside {NODE_V6}"),
        "IPv6 server outside 400::/7 sees the node's uplink address"
    );
    assert!(
        node.check("ctr-egr", &pod, &result, "1.1.0")
            .assert_ok()
            .is_null(),
        "CHECK passes with egress on (default routes of both families)"
    );
    let mut with_default_route = conf.clone();
    with_default_route["defaultRoute"] = true.into();
    let other = Netns::new("-egrdef");
    let second = node
        .add("ctr-egrdef", &other, &with_default_route)
        .assert_ok();
    let mut check_conf = with_default_route.clone();
    check_conf["prevResult"] = second;
    let check = node.cni("CHECK", "ctr-egrdef", &other.path(), "eth0", &check_conf);
    assert_eq!(check.code, 0, "CHECK with defaultRoute: {}", check.stdout);
}

#[test]
fn a_pod_resolves_names_through_an_ipv4_only_dns_server() {
    require_root();
    let node = Node::standard();
    let uplink = Uplink::new(&node);
    let _resolver = Resolver::start(&uplink.net);
    assert_eq!(
        resolve(&node.ns, "example.test"),
        RESOLVED,
        "the node resolves"
    );
    let pod = Netns::new("-dns");
    node.add("ctr-dns", &pod, &node.conf("1.0.0")).assert_ok();
    assert_eq!(
        resolve(&pod, "example.test"),
        RESOLVED,
        "the pod resolves through the node's IPv4 resolver"
    );
}

#[test]
fn overlay_traffic_keeps_the_pod_address_with_egress_on() {
    require_root();
    let cluster = Cluster::new();
    let (client, backend) = (Netns::new("-ocli"), Netns::new("-obk"));
    let conf_a = cluster.a.conf("1.0.0");
    let client_address = pod_address(&cluster.a.add("ctr-ocli", &client, &conf_a).assert_ok());
    let conf_b = cluster.b.conf("1.0.0");
    let backend_address = pod_address(&cluster.b.add("ctr-obk", &backend, &conf_b).assert_ok());
    let _server = Server::start(&backend, 8080, "pod-b");
    assert_eq!(
        tcp_get(&client, &backend_address, 8080),
        format!("pod-b {client_address}"),
        "the far side sees the pod's own overlay address, not its node's"
    );
}

#[test]
fn egress_overlay_reaches_neither_server_and_has_no_ipv4() {
    require_root();
    let mut node = Node::standard();
    node.egress = Some("overlay");
    let uplink = Uplink::new(&node);
    let _server = Server::start(&uplink.net, 8080, "outside");
    let pod = Netns::new("-novr");
    let result = node.add("ctr-novr", &pod, &node.conf("1.0.0")).assert_ok();
    assert!(ipv4_of(&pod).is_empty(), "no IPv4 address on the pod");
    assert_eq!(tcp_get(&pod, NET_V4, 8080), "", "IPv4 server reached");
    assert_eq!(tcp_get(&pod, NET_V6, 8080), "", "IPv6 server reached");
    assert!(
        node.check("ctr-novr", &pod, &result, "1.0.0")
            .assert_ok()
            .is_null()
    );
    let ruleset = node.ns.run(&["nft", "list", "ruleset"]);
    assert!(!ruleset.contains("masquerade"), "{ruleset}");
}

/// Counts IPv4 echo requests arriving in `ns`.
fn count_icmp(ns: &Netns) {
    let rules = "add table inet mcni-icmp { chain count { type filter hook prerouting priority 0; policy accept; ip protocol icmp icmp type echo-request counter; }; }";
    ns.run(&["nft", rules]);
}

fn icmp_seen(ns: &Netns) -> u64 {
    common::counted(ns, "mcni-icmp")[0]
}

#[test]
fn ipv4_spoofing_from_a_pod_is_dropped_and_counted() {
    require_root();
    let node = Node::standard();
    let uplink = Uplink::new(&node);
    let conf = node.conf("1.0.0");
    let (spoofer, victim) = (Netns::new("-s4"), Netns::new("-v4"));
    node.add("ctr-s4", &spoofer, &conf).assert_ok();
    let victim_v6 = pod_address(&node.add("ctr-v4", &victim, &conf).assert_ok());
    let victim_v4 = ipv4_of(&victim).pop().expect("victim IPv4");
    let own_v4 = ipv4_of(&spoofer).pop().expect("spoofer IPv4");
    count_icmp(&uplink.net);
    count_icmp(&victim);
    let (ipv4_dropped_before, _) = source_filter_drops(&node);
    let forged = [victim_v4.as_str(), NODE_V4, "192.0.2.77"];
    for source in forged {
        spoofer.ip(&["addr", "add", &format!("{source}/32"), "dev", "eth0"]);
        for target in [NET_V4, victim_v4.as_str()]
            .into_iter()
            .filter(|t| *t != source)
        {
            let replied = spoofer.exec(&["ping", "-4", "-c", "1", "-W", "1", "-I", source, target]);
            assert!(!replied, "{source} -> {target} got a reply");
        }
        spoofer.ip(&["addr", "del", &format!("{source}/32"), "dev", "eth0"]);
    }
    assert_eq!(icmp_seen(&uplink.net), 0, "forged IPv4 reached the outside");
    assert_eq!(
        icmp_seen(&victim),
        0,
        "forged IPv4 reached the neighbour pod"
    );
    let (ipv4_dropped_after, _) = source_filter_drops(&node);
    assert!(
        ipv4_dropped_after >= ipv4_dropped_before + 5,
        "IPv4 drop counter {ipv4_dropped_before} -> {ipv4_dropped_after}"
    );
    assert!(
        spoofer.exec(&["ping", "-4", "-c", "1", "-W", "2", "-I", &own_v4, NET_V4]),
        "the pod's own IPv4 still flows"
    );
    assert!(spoofer.ping(&victim_v6), "IPv6 still flows");
    assert_eq!(
        icmp_seen(&uplink.net),
        1,
        "exactly the legitimate echo arrived"
    );
}

#[test]
fn fifty_parallel_adds_get_distinct_ipv4_and_dels_leave_nothing() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.0.0");
    // One ADD/DEL first: forwarding and the table are node state that stays.
    let warm = Netns::new("-ewarm");
    node.add("ctr-ewarm", &warm, &conf).assert_ok();
    node.del("ctr-ewarm", &warm.path(), &conf).assert_ok();
    let before = node_state(&node);
    let pods: Vec<Netns> = (0..50).map(|_| Netns::new("-e50")).collect();
    std::thread::scope(|scope| {
        for (i, pod) in pods.iter().enumerate() {
            let (node, conf) = (&node, &conf);
            scope.spawn(move || node.add(&format!("ctr-e50-{i}"), pod, conf).assert_ok());
        }
    });
    // ADD adds its pod's fast path elements; DEL leaves nf_tables alone.
    let ruleset_before = node.ns.run(&["nft", "list", "ruleset"]);
    let mut addresses: Vec<String> = pods.iter().flat_map(ipv4_of).collect();
    assert!(addresses.iter().all(|a| in_pool(a)), "{addresses:?}");
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 50, "distinct IPv4 addresses");
    std::thread::scope(|scope| {
        for (i, pod) in pods.iter().enumerate() {
            let (node, conf) = (&node, &conf);
            scope.spawn(move || {
                node.del(&format!("ctr-e50-{i}"), &pod.path(), conf)
                    .assert_ok()
            });
        }
    });
    assert_eq!(
        node_state(&node),
        before,
        "DEL left links, addresses or routes"
    );
    let ruleset = strip_counters(&node.ns.run(&["nft", "list", "ruleset"]));
    assert_eq!(
        ruleset,
        strip_counters(&ruleset_before),
        "DEL changed nf_tables"
    );
}

/// The ruleset without counter values, and with the fast path elements'
/// interfaces left out: nft prints a live one by name, a gone one by index.
fn strip_counters(ruleset: &str) -> String {
    ruleset
        .lines()
        .map(|line| line.split(" counter packets").next().unwrap_or(line))
        .map(|line| match line.split_once(" . ") {
            Some((address, _)) if !line.contains(" @pods") => format!("{address} . IF"),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn check_fails_after_the_egress_rules_are_flushed_and_add_restores_them() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.1.0");
    let (pod, other) = (Netns::new("-eflush"), Netns::new("-eflush2"));
    let result = node.add("ctr-eflush", &pod, &conf).assert_ok();
    node.ns.run(&[
        "nft",
        "flush",
        "chain",
        "inet",
        "mycelium-cni",
        "egress-mycnet",
    ]);
    let msg = node.check("ctr-eflush", &pod, &result, "1.1.0").error(11);
    assert!(msg.contains("egress") && msg.contains("altered"), "{msg}");
    node.add("ctr-eflush2", &other, &conf).assert_ok();
    assert!(
        node.check("ctr-eflush", &pod, &result, "1.1.0")
            .assert_ok()
            .is_null()
    );
    node.ns.run(&[
        "nft",
        "delete",
        "chain",
        "inet",
        "mycelium-cni",
        "egress-mycnet",
    ]);
    let msg = node.check("ctr-eflush", &pod, &result, "1.1.0").error(11);
    assert!(msg.contains("missing"), "{msg}");
    let gc = {
        let mut gc: Value = conf.clone();
        gc["cni.dev/valid-attachments"] = serde_json::json!([
            {"containerID": "ctr-eflush", "ifname": "eth0"},
            {"containerID": "ctr-eflush2", "ifname": "eth0"}
        ]);
        gc
    };
    let outcome = node.run(&[("CNI_COMMAND", "GC")], &gc.to_string());
    assert_eq!(outcome.code, 0, "GC: {}", outcome.stdout);
    assert!(
        node.check("ctr-eflush", &pod, &result, "1.1.0")
            .assert_ok()
            .is_null(),
        "GC restored the chain"
    );
}
