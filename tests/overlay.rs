//! Pods on the real overlay: real Mycelium daemons (found through
//! `MYCELIUM_BIN`, then `mycelium` on `PATH`) in node namespaces, peered
//! over veths with IPv4 addresses, and the release binary attaching pods to
//! them. Every other test file stands in for Mycelium; this one does not.
//! Each step is one of the checks the README lists, its assertions named by
//! the step. Root; needs curl (the daemon's API), nft, python3.

mod common;
#[path = "overlay/fixture.rs"]
mod fixture;

use common::{Netns, Server, binary, require_root, tcp_get};
use fixture::{
    B_FROM_A, B_FROM_C, Line, OverlayNode, Pod, Sink, TUN, TempDir, daemon_binary, ip_state,
    link_mtu, nft_ruleset, node_state, ping_quick, ping_sized, reap, send_from, send_random,
    tcp_get_within, wait_until,
};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NETWORK: &str = "overlay";
/// A second network on node A, with `overlayIngress: "replies"`.
const GUARDED: &str = "guarded";
const PORT: u16 = 8080;
const BULK_PORT: u16 = 8081;
const BULK_BYTES: usize = 4 << 20;
const CAPTURE_TABLE: &str = "mcni-capture";

/// The pods of the three-node test: two on A's open network (one of them
/// the "rogue" with root that forges sources), one on A's guarded network,
/// one on C.
struct Pods {
    a: Pod,
    c: Pod,
    guarded: Pod,
    rogue: Pod,
}

#[test]
fn pods_on_three_real_daemons_in_a_line() {
    require_root();
    daemon_binary();
    let started = Instant::now();
    let mut line = Line::start();
    eprintln!(
        "three daemons up and routes converged in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let pods = Pods {
        a: Pod::attach(&line.a, "ctr-a", line.a.conf(NETWORK)),
        c: Pod::attach(&line.c, "ctr-c", line.c.conf(NETWORK)),
        guarded: Pod::attach(&line.a, "ctr-guarded", guarded_conf(&line.a)),
        rogue: Pod::attach(&line.a, "ctr-rogue", line.a.conf(NETWORK)),
    };
    three_nodes_in_a_line(&line, &pods);
    bulk_data(&line, &pods);
    egress_keeps_the_pod_source(&line, &pods);
    identity(&line, &pods);
    ingress_replies(&line, &pods);
    daemon_down_and_back(&mut line, &pods);
    no_leftovers(&mut line, pods);
    eprintln!("overlay test took {:.1} s", started.elapsed().as_secs_f64());
}

fn guarded_conf(node: &OverlayNode) -> Value {
    let mut conf = node.conf(GUARDED);
    conf["overlayIngress"] = "replies".into();
    conf
}

/// The peers the daemon's API lists, each as its JSON text.
fn peers(node: &OverlayNode) -> Vec<String> {
    let peers = node.api("admin/peers").unwrap_or(Value::Null);
    let peers = peers.as_array().cloned().unwrap_or_default();
    peers.iter().map(Value::to_string).collect()
}

/// The next hop of `node`'s selected route to `subnet`.
fn next_hop(node: &OverlayNode, subnet: &str) -> String {
    let selected = node.selected();
    let route = selected.iter().find(|(s, _)| s == subnet);
    route.map(|(_, hop)| hop.clone()).unwrap_or_default()
}

/// 1. A peers only with B, C only with B; pods on A and C get addresses in
///    their node's /64 as the API reports it, and reach each other and the
///    remote node (and are reached by it) over ICMP and TCP, through B.
fn three_nodes_in_a_line(line: &Line, pods: &Pods) {
    const CHECK: &str = "three nodes in a line";
    let (a, c) = (&line.a, &line.c);
    let b_for_a = format!("{B_FROM_A}:9651");
    let b_for_c = format!("{B_FROM_C}:9651");
    let (peers_a, peers_c) = (peers(a), peers(c));
    assert!(
        peers_a.len() == 1 && peers_a[0].contains(&b_for_a),
        "{CHECK}: A's peers are not just B: {peers_a:?}"
    );
    assert!(
        peers_c.len() == 1 && peers_c[0].contains(&b_for_c),
        "{CHECK}: C's peers are not just B: {peers_c:?}"
    );
    let (a_to_c, c_to_a) = (next_hop(a, &c.subnet), next_hop(c, &a.subnet));
    assert!(
        a_to_c.contains(&b_for_a),
        "{CHECK}: A's route to C's /64 is not through B: {a_to_c}"
    );
    assert!(
        c_to_a.contains(&b_for_c),
        "{CHECK}: C's route to A's /64 is not through B: {c_to_a}"
    );
    for (node, pod) in [
        (a, &pods.a),
        (a, &pods.guarded),
        (a, &pods.rogue),
        (c, &pods.c),
    ] {
        assert!(
            node.owns(&pod.address),
            "{CHECK}: pod address {} is not in node {}'s /64 {} (API)",
            pod.address,
            node.label,
            node.subnet
        );
    }

    let _servers = [
        Server::start(&pods.a.ns, PORT, "pod-a"),
        Server::start(&pods.c.ns, PORT, "pod-c"),
        Server::start(a.ns(), PORT, "node-a"),
        Server::start(c.ns(), PORT, "node-c"),
    ];
    let (pa, pc) = (&pods.a, &pods.c);
    assert!(
        pa.ns.ping(&pc.address),
        "{CHECK}: A's pod -> C's pod (ICMP)"
    );
    assert!(
        pc.ns.ping(&pa.address),
        "{CHECK}: C's pod -> A's pod (ICMP)"
    );
    let said = tcp_get(&pa.ns, &pc.address, PORT);
    assert!(
        said.starts_with("pod-c "),
        "{CHECK}: A's pod -> C's pod (TCP): {said:?}"
    );
    let said = tcp_get(&pc.ns, &pa.address, PORT);
    assert!(
        said.starts_with("pod-a "),
        "{CHECK}: C's pod -> A's pod (TCP): {said:?}"
    );

    assert!(
        pa.ns.ping(&c.node.address),
        "{CHECK}: A's pod -> node C (ICMP)"
    );
    assert!(
        c.ns().ping(&pa.address),
        "{CHECK}: node C -> A's pod (ICMP)"
    );
    assert!(
        pc.ns.ping(&a.node.address),
        "{CHECK}: C's pod -> node A (ICMP)"
    );
    assert!(
        a.ns().ping(&pc.address),
        "{CHECK}: node A -> C's pod (ICMP)"
    );
    let said = tcp_get(&pa.ns, &c.node.address, PORT);
    assert!(
        said.starts_with("node-c "),
        "{CHECK}: A's pod -> node C (TCP): {said:?}"
    );
    let said = tcp_get(c.ns(), &pa.address, PORT);
    assert!(
        said.starts_with("pod-a "),
        "{CHECK}: node C -> A's pod (TCP): {said:?}"
    );
    let said = tcp_get(&pc.ns, &a.node.address, PORT);
    assert!(
        said.starts_with("node-a "),
        "{CHECK}: C's pod -> node A (TCP): {said:?}"
    );
    let said = tcp_get(a.ns(), &pc.address, PORT);
    assert!(
        said.starts_with("pod-c "),
        "{CHECK}: node A -> C's pod (TCP): {said:?}"
    );
}

/// 2. 4 MiB over TCP from A's pod to C's pod arrive intact, with both veth
///    ends at the MTU the plugin chose: the TUN's, as the daemon set it.
fn bulk_data(line: &Line, pods: &Pods) {
    const CHECK: &str = "bulk data";
    let tun_mtu = link_mtu(line.a.ns(), TUN);
    assert_eq!(tun_mtu, 1400, "{CHECK}: the daemon's TUN MTU");
    for pod in [&pods.a, &pods.c] {
        let interfaces = pod.result["interfaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !interfaces.is_empty() && interfaces.iter().all(|i| i["mtu"] == tun_mtu),
            "{CHECK}: the result's interfaces do not carry MTU {tun_mtu}: {}",
            pod.result
        );
        assert_eq!(pod.mtu(), tun_mtu, "{CHECK}: pod eth0 MTU");
    }
    // A full-size packet crosses without fragmentation; one byte more is
    // refused at the pod (IPv6 40 + ICMPv6 8 bytes of headers).
    let payload = tun_mtu - 48;
    assert!(
        ping_sized(&pods.a.ns, &pods.c.address, payload, 2),
        "{CHECK}: a {tun_mtu}-byte packet A's pod -> C's pod"
    );
    assert!(
        !ping_sized(&pods.a.ns, &pods.c.address, payload + 1, 1),
        "{CHECK}: a packet over the MTU left A's pod unfragmented"
    );
    let sink = Sink::start(&pods.c.ns, BULK_PORT);
    let started = Instant::now();
    let sent = send_random(&pods.a.ns, &pods.c.address, BULK_PORT, BULK_BYTES);
    let received = sink.received();
    let took = started.elapsed();
    assert!(
        sent.starts_with(&format!("{BULK_BYTES} ")),
        "{CHECK}: the sender did not send 4 MiB: {sent:?}"
    );
    assert_eq!(
        received,
        format!("{sent} {}", pods.a.address),
        "{CHECK}: what C's pod received (bytes, SHA-256, from)"
    );
    eprintln!(
        "bulk: {BULK_BYTES} bytes A's pod -> C's pod in {:.0} ms",
        took.as_secs_f64() * 1e3
    );
}

/// 3. C's pod sees A's pod's own overlay address as the source, never the
///    node's: traffic into the overlay is not NATed.
fn egress_keeps_the_pod_source(line: &Line, pods: &Pods) {
    const CHECK: &str = "egress";
    let _servers = [
        Server::start(&pods.c.ns, PORT, "pod-c"),
        Server::start(line.c.ns(), PORT, "node-c"),
    ];
    for (target, name) in [(&pods.c.address, "pod-c"), (&line.c.node.address, "node-c")] {
        let said = tcp_get(&pods.a.ns, target, PORT);
        assert_eq!(
            said,
            format!("{name} {}", pods.a.address),
            "{CHECK}: {name} does not see A's pod's own address (node A is {})",
            line.a.node.address
        );
    }
}

/// The packets the capture table on `node` counted under `comment`.
fn captured(node: &OverlayNode, comment: &str) -> u64 {
    let listing = node
        .ns()
        .run(&["nft", "list", "table", "inet", CAPTURE_TABLE]);
    let rule = listing
        .lines()
        .find(|l| l.contains(&format!("comment \"{comment}\"")));
    let after = rule.and_then(|r| r.split("counter packets ").nth(1));
    after
        .and_then(|a| a.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter {comment} in {listing}"))
}

/// The IPv6 packets the source filter's chain dropped on `node` (the
/// chain alone: node A also holds an overlay ingress chain).
fn ipv6_source_drops(node: &OverlayNode) -> u64 {
    common::source_filter_drops(&node.node).1
}

/// 4. A pod with root on A sends as its neighbour, as its node, and from
///    addresses in other nodes' /64s: nothing of it arrives on C's TUN.
///    Its own address does arrive (the capture works).
fn identity(line: &Line, pods: &Pods) {
    const CHECK: &str = "identity";
    let (a, b, c, rogue) = (&line.a, &line.b, &line.c, &pods.rogue);
    let forged = [
        ("neighbour", pods.a.address.clone()),
        ("node", a.node.address.clone()),
        ("other-node-64", b.unused_address()),
        ("receiver-64", c.unused_address()),
    ];
    let mut rules = format!(
        "table inet {CAPTURE_TABLE} {{ chain tun {{ type filter hook prerouting priority -500; policy accept;\n"
    );
    for (name, source) in forged.iter().chain([&("own", rogue.address.clone())]) {
        rules += &format!("iifname \"{TUN}\" ip6 saddr {source} counter comment \"{name}\"\n");
        if *name != "own" {
            // The pod's root may give its interface any address.
            let address = format!("{source}/128");
            rogue
                .ns
                .ip(&["-6", "addr", "add", &address, "dev", "eth0", "nodad"]);
        }
    }
    rules += "}\n}\n";
    let file = line.dir.path.join("capture.nft");
    std::fs::write(&file, rules).expect("write capture rules");
    c.ns().run(&["nft", "-f", &file.to_string_lossy()]);

    let dropped_before = ipv6_source_drops(a);
    let targets = [c.node.address.as_str(), pods.c.address.as_str()];
    let sources: Vec<&str> = forged.iter().map(|(_, s)| s.as_str()).collect();
    send_from(&rogue.ns, &sources, &targets);
    // Then its own address, on the same path: once those have arrived, the
    // forged ones sent before them would have too.
    send_from(&rogue.ns, &[&rogue.address], &targets);
    let genuine = 2 * 3 * targets.len() as u64;
    let arrived = Instant::now();
    while captured(c, "own") < genuine {
        assert!(
            arrived.elapsed() < Duration::from_secs(5),
            "{CHECK}: the pod's own packets did not all arrive on C's TUN within 5 s: {}",
            c.ns().run(&["nft", "list", "table", "inet", CAPTURE_TABLE])
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for (name, source) in &forged {
        assert_eq!(
            captured(c, name),
            0,
            "{CHECK}: packets from A's pod as {name} ({source}) arrived on C's TUN"
        );
    }
    let dropped = ipv6_source_drops(a) - dropped_before;
    let forged_packets = forged.len() as u64 * genuine;
    assert!(
        dropped >= forged_packets,
        "{CHECK}: A's source filter dropped {dropped} packets, {forged_packets} were forged"
    );
    c.ns()
        .run(&["nft", "delete", "table", "inet", CAPTURE_TABLE]);
}

/// The packets the guarded network's overlay ingress chain dropped on `node`.
fn ingress_drops(node: &OverlayNode) -> u64 {
    let chain = format!("overlay-in-{GUARDED}");
    let listing = node
        .ns()
        .run(&["nft", "list", "chain", "inet", "mycelium-cni", &chain]);
    let after = listing.split("counter packets ").last().unwrap_or("0");
    after.split(' ').next().unwrap_or("0").parse().unwrap_or(0)
}

/// 5. With `overlayIngress: "replies"` on A, neither C's pod nor C reaches
///    A's pod unsolicited; A's pod's own connections to C work.
fn ingress_replies(line: &Line, pods: &Pods) {
    const CHECK: &str = "ingress";
    let (c, guarded) = (&line.c, &pods.guarded);
    let _servers = [
        Server::start(&guarded.ns, PORT, "guarded"),
        Server::start(&pods.c.ns, PORT, "pod-c"),
    ];
    assert!(
        guarded.ns.ping(&pods.c.address),
        "{CHECK}: guarded pod -> C's pod (ICMP)"
    );
    assert!(
        guarded.ns.ping(&c.node.address),
        "{CHECK}: guarded pod -> node C (ICMP)"
    );
    let said = tcp_get(&guarded.ns, &pods.c.address, PORT);
    assert_eq!(
        said,
        format!("pod-c {}", guarded.address),
        "{CHECK}: guarded pod -> C's pod (TCP)"
    );
    let before = ingress_drops(&line.a);
    assert!(
        !ping_quick(&pods.c.ns, &guarded.address),
        "{CHECK}: C's pod reached the guarded pod unsolicited (ICMP)"
    );
    assert!(
        !ping_quick(c.ns(), &guarded.address),
        "{CHECK}: node C reached the guarded pod unsolicited (ICMP)"
    );
    assert_eq!(
        tcp_get_within(&pods.c.ns, &guarded.address, PORT, 1),
        "",
        "{CHECK}: C's pod reached the guarded pod unsolicited (TCP)"
    );
    let dropped = ingress_drops(&line.a) - before;
    assert!(
        dropped >= 3,
        "{CHECK}: A's ingress chain counted {dropped} drops, not 3"
    );
    assert!(
        pods.c.ns.ping(&pods.a.address),
        "{CHECK}: the open network's pod on A is no longer reachable"
    );
}

/// CHECK of `pod` on `node`, with its ADD result as prevResult.
fn check(node: &OverlayNode, pod: &Pod) -> common::Outcome {
    let mut conf = pod.conf.clone();
    conf["prevResult"] = pod.result.clone();
    node.node
        .cni("CHECK", &pod.container, &pod.ns.path(), "eth0", &conf)
}

/// 6. A's daemon stopped: its TUN goes, and ADD fails with the clear error
///    leaving nothing. Restarted with the same key: same address and /64,
///    A's existing pods reach across again, and CHECK passes.
fn daemon_down_and_back(line: &mut Line, pods: &Pods) {
    const CHECK: &str = "daemon down and back";
    let (address, subnet) = (line.a.node.address.clone(), line.a.subnet.clone());
    line.a.stop_daemon();
    wait_until(
        &format!("{CHECK}: A's TUN gone"),
        Duration::from_secs(5),
        || !line.a.has_tun(),
    );
    let before = node_state(&line.a);
    let late = Netns::new("-ovllate");
    let msg = line
        .a
        .node
        .add("ctr-late", &late, &line.a.conf(NETWORK))
        .error(11);
    assert_eq!(
        msg,
        format!("failed to find interface {TUN}"),
        "{CHECK}: ADD's error"
    );
    assert_eq!(
        node_state(&line.a),
        before,
        "{CHECK}: the failed ADD changed node A"
    );
    let links = late.ip(&["-o", "link", "show"]);
    assert_eq!(
        links.lines().count(),
        1,
        "{CHECK}: the failed ADD left links in the pod: {links}"
    );
    let del = line
        .a
        .node
        .del("ctr-late", &late.path(), &line.a.conf(NETWORK));
    del.assert_ok();

    line.a.start_daemon();
    let up = line.a.wait_up(Duration::from_secs(15));
    assert_eq!(
        (&line.a.node.address, &line.a.subnet),
        (&address, &subnet),
        "{CHECK}: the same key gave another address"
    );
    let converged = line.wait_converged(Duration::from_secs(30));
    eprintln!(
        "restart: TUN back in {:.1} s, routes in {:.1} s more",
        up.as_secs_f64(),
        converged.as_secs_f64()
    );
    let (pa, pc) = (&pods.a, &pods.c);
    wait_until(
        &format!("{CHECK}: A's pod -> C's pod again"),
        Duration::from_secs(10),
        || ping_quick(&pa.ns, &pc.address),
    );
    assert!(
        pc.ns.ping(&pa.address),
        "{CHECK}: C's pod -> A's pod again (ICMP)"
    );
    let _server = Server::start(&pc.ns, PORT, "pod-c");
    let said = tcp_get(&pa.ns, &pc.address, PORT);
    assert!(
        said.starts_with("pod-c "),
        "{CHECK}: A's pod -> C's pod again (TCP): {said:?}"
    );
    assert!(
        pods.guarded.ns.ping(&pc.address),
        "{CHECK}: guarded pod -> C's pod again"
    );
    for pod in [&pods.a, &pods.guarded, &pods.rogue] {
        let outcome = check(&line.a, pod);
        assert_eq!(
            outcome.code, 0,
            "{CHECK}: CHECK of {} after the restart: {}",
            pod.container, outcome.stdout
        );
    }
}

/// 7. After DEL of every pod and the daemons' stop, the nodes hold what the
///    test made and the plugin's node-wide nf_tables table (the source
///    filter, kept for the next pod); `mycelium-cni uninstall` removes that.
fn no_leftovers(line: &mut Line, pods: Pods) {
    const CHECK: &str = "no leftovers";
    let on_a = [&pods.a, &pods.guarded, &pods.rogue];
    for (node, pod) in on_a
        .into_iter()
        .map(|p| (&line.a, p))
        .chain([(&line.c, &pods.c)])
    {
        node.node
            .del(&pod.container, &pod.ns.path(), &pod.conf)
            .assert_ok();
    }
    for node in [&line.a, &line.c] {
        // Our host veths: `myc` names, the daemon's TUN aside.
        let mut veths = node.node.host_veths();
        veths.retain(|name| name != TUN);
        assert!(
            veths.is_empty(),
            "{CHECK}: host veths left on {}: {veths:?}",
            node.label
        );
    }
    drop(pods);
    for node in line.nodes() {
        node.signal_daemon();
    }
    for node in [&mut line.a, &mut line.b, &mut line.c] {
        node.stop_daemon();
    }
    for (node, (ip_baseline, nft_baseline)) in line.nodes().into_iter().zip(&line.baseline) {
        assert_eq!(
            &ip_state(node),
            ip_baseline,
            "{CHECK}: node {}'s links, addresses or routes differ from before its daemon",
            node.label
        );
        let tables = nft_ruleset(node);
        let plugin_only = tables.is_empty()
            || (tables.starts_with("table inet mycelium-cni {")
                && tables.matches("table ").count() == 1);
        assert!(
            plugin_only,
            "{CHECK}: node {} holds other nf_tables state: {tables}",
            node.label
        );
        uninstall(line, node);
        assert_eq!(
            &nft_ruleset(node),
            nft_baseline,
            "{CHECK}: node {}'s nf_tables after `mycelium-cni uninstall`",
            node.label
        );
    }
}

/// `mycelium-cni uninstall` in `node`, with directories that hold nothing:
/// it removes the plugin's nf_tables table.
fn uninstall(line: &Line, node: &OverlayNode) {
    let none = line.dir.path.join("none").to_string_lossy().into_owned();
    let program = binary();
    let args = [
        "ip",
        "netns",
        "exec",
        &node.ns().name,
        &program,
        "uninstall",
    ];
    let dirs = ["--bin-dir", &none, "--conf-dir", &none];
    common::sh(&[&args[..], &dirs[..]].concat());
}

/// The DaemonSet's flow: `mycelium-cni install --wait`, started on a node
/// before its daemon, waits, and writes the conflist within a second of the
/// daemon's address appearing on the TUN; a pod attached with that conflist
/// gets an address in the node's /64.
#[test]
fn daemonset_install_waits_for_the_daemon() {
    require_root();
    daemon_binary();
    const CHECK: &str = "DaemonSet flow";
    let dir = TempDir::new("-install");
    let mut node = OverlayNode::new("D", &dir.path);
    let (bin_dir, conf_dir) = (dir.path.join("bin"), dir.path.join("net.d"));
    let conflist = conf_dir.join("10-mycelium.conflist");
    let install = Command::new("ip")
        .args([
            "netns",
            "exec",
            &node.ns().name,
            &binary(),
            "install",
            "--wait",
        ])
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--conf-dir")
        .arg(&conf_dir)
        .args(["--interface", TUN, "--name", NETWORK])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn install");
    let mut install = Reaped(install);
    let install = &mut install.0;
    let mut stderr = BufReader::new(install.stderr.take().expect("install stderr"));
    let mut first = String::new();
    let _ = stderr.read_line(&mut first);
    assert!(
        first.contains("waiting for the Mycelium interface")
            && first.contains(&format!("failed to find interface {TUN}")),
        "{CHECK}: install did not say it waits for {TUN}: {first:?}"
    );
    assert!(
        install.try_wait().expect("install status").is_none() && !conflist.exists(),
        "{CHECK}: install returned or wrote the conflist before the daemon started"
    );

    node.start_daemon();
    let started = Instant::now();
    let (mut appeared, mut written) = (None, None);
    while (appeared.is_none() || written.is_none()) && started.elapsed() < Duration::from_secs(20) {
        if appeared.is_none() && node.tun_address().is_some() {
            appeared = Some(Instant::now());
        }
        if written.is_none() && conflist.exists() {
            written = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let appeared = appeared.unwrap_or_else(|| panic!("{CHECK}: no address on the TUN in 20 s"));
    let written = written.unwrap_or_else(|| panic!("{CHECK}: no conflist 20 s after start"));
    let delay = written.saturating_duration_since(appeared);
    eprintln!(
        "install: address {:.2} s after the daemon's start, conflist {:.3} s after the address",
        appeared.duration_since(started).as_secs_f64(),
        delay.as_secs_f64()
    );
    assert!(
        delay <= Duration::from_secs(1),
        "{CHECK}: the conflist came {delay:?} after the address (more than 1 s)"
    );
    assert!(
        reap(install, Duration::from_secs(5)),
        "{CHECK}: install did not return after writing the conflist"
    );
    let mut said = String::new();
    let _ = install
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut said);
    assert!(said.contains("wrote "), "{CHECK}: install's report: {said}");
    assert_eq!(
        install.wait().ok().and_then(|s| s.code()),
        Some(0),
        "{CHECK}: exit code"
    );

    // A runtime reading that conflist attaches a pod in the node's /64.
    node.wait_up(Duration::from_secs(10));
    let list: Value =
        serde_json::from_str(&std::fs::read_to_string(&conflist).expect("read conflist"))
            .expect("conflist JSON");
    let mut conf = list["plugins"][1].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    conf["name"] = list["name"].clone();
    assert_eq!(conf["myceliumInterface"], json!(TUN), "{CHECK}: conflist");
    let pod = Pod::attach(&node, "ctr-ds", conf);
    assert!(
        node.owns(&pod.address),
        "{CHECK}: pod {} not in the node's /64 {}",
        pod.address,
        node.subnet
    );
    assert!(
        pod.ns.ping(&node.node.address),
        "{CHECK}: the pod reaches its node"
    );
    node.node
        .del(&pod.container, &pod.ns.path(), &pod.conf)
        .assert_ok();
}

/// A child killed (by its PID, SIGKILL) and reaped on drop unless it has
/// been reaped already.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        // Child::kill does nothing once the child was waited for.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
