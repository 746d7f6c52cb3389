//! What a hostile hand, config or pod must not break in the plugin's
//! nf_tables table: a dormant table or a chain without its hook is noticed
//! and repaired, two networks whose names hash alike never share an
//! interface group, `::` is a source only for duplicate address detection,
//! a flood of neighbour solicitations from a pod cannot fill the node's
//! neighbour table, and GC removes a network's chains with its last pod.
//! Root; `nft` only inspects and breaks the state.

mod common;

use common::{Netns, Node, pod_address, require_root, source_filter_drops};
use serde_json::{Value, json};
use std::process::Command;

const TABLE: &str = "mycelium-cni";

/// Counts, in `ns` after the source filter, IPv6 packets from `::`: UDP,
/// and neighbour solicitations (what DAD sends).
fn count_unspecified(ns: &Netns) {
    let rules = "add table inet mcni-un { chain c { type filter hook prerouting priority 0; policy accept; ip6 saddr :: meta l4proto udp counter; ip6 saddr :: icmpv6 type nd-neighbor-solicit counter; }; }";
    ns.run(&["nft", rules]);
}

fn unspecified_seen(ns: &Netns) -> (u64, u64) {
    let counts = common::counted(ns, "mcni-un");
    (counts[0], counts[1])
}

/// Sends raw IPv6 packets from inside `ns` out of eth0 (IPV6_HDRINCL): the
/// Python below builds them. `kind` is "udp" (from `source` to `target`)
/// or "ns" (`count` neighbour solicitations for `target`, each from its own
/// link-local source and MAC, as a flooding pod would).
fn send_raw(ns: &Netns, kind: &str, source: &str, target: &str, count: u32) {
    let script = format!(
        r#"import socket, struct
def csum(data):
    if len(data) % 2: data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def ip6(src, dst, nh, payload, hop):
    a, b = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    pseudo = a + b + struct.pack('!I3xB', len(payload), nh)
    payload = payload[:2] + struct.pack('!H', csum(pseudo + payload)) + payload[4:] if nh == 58 else payload[:6] + struct.pack('!H', csum(pseudo + payload)) + payload[8:]
    return struct.pack('!IHBB', 6 << 28, len(payload), nh, hop) + a + b + payload
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, 25, b'eth0')
index = socket.if_nametoindex('eth0')
if '{kind}' == 'udp':
    payload = struct.pack('!HHHH', 4000, 5000, 12, 0) + b'abcd'
    s.sendto(ip6('{source}', '{target}', 17, payload, 64), ('{target}', 0, 0, index))
else:
    target = socket.inet_pton(socket.AF_INET6, '{target}')
    for i in range({count}):
        mac = struct.pack('!HI', 0x0200, i)
        src = 'fe80::%x:%x' % (i >> 16, i & 0xffff)
        payload = struct.pack('!BBHI', 135, 0, 0, 0) + target + struct.pack('!BB', 1, 1) + mac
        s.sendto(ip6(src, '{target}', 58, payload, 255), ('{target}', 0, 0, index))
"#
    );
    let output = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", &script])
        .output()
        .expect("spawn python");
    assert!(
        output.status.success(),
        "raw sender: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn check_conf(conf: &Value, result: &Value) -> Value {
    let mut check = conf.clone();
    check["prevResult"] = result.clone();
    check
}

#[test]
fn a_dormant_table_is_noticed_and_woken_by_the_next_add() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.1.0");
    let (pod, other) = (Netns::new("-dorm"), Netns::new("-dorm2"));
    let result = node.add("ctr-dorm", &pod, &conf).assert_ok();
    node.ns
        .run(&["nft", "add", "table", "inet", TABLE, "{ flags dormant; }"]);
    let msg = node.check("ctr-dorm", &pod, &result, "1.1.0").error(11);
    assert!(msg.contains("dormant"), "CHECK: {msg}");
    let listing = node.ns.run(&[&common::binary(), "list"]);
    assert!(
        listing
            .contains("source filter: table inet mycelium-cni was altered: the table is dormant"),
        "list: {listing}"
    );
    node.add("ctr-dorm2", &other, &conf).assert_ok();
    let table = node.ns.run(&["nft", "list", "table", "inet", TABLE]);
    assert!(
        !table.contains("dormant"),
        "the next ADD left it dormant: {table}"
    );
    assert!(
        node.check("ctr-dorm", &pod, &result, "1.1.0")
            .assert_ok()
            .is_null()
    );
    // And the filter works again: a forged source towards the neighbour.
    let neighbour = pod_address(
        &node
            .add("ctr-dorm3", &Netns::new("-dorm3"), &conf)
            .assert_ok(),
    );
    let (_, before) = source_filter_drops(&node);
    pod.ip(&[
        "-6",
        "addr",
        "add",
        "5fd:a395:1a8d:501d:ff0f::bad/128",
        "dev",
        "eth0",
        "nodad",
    ]);
    let replied = pod.exec(&[
        "ping",
        "-6",
        "-c",
        "1",
        "-W",
        "1",
        "-I",
        "5fd:a395:1a8d:501d:ff0f::bad",
        &neighbour,
    ]);
    assert!(!replied, "a forged source got an answer");
    assert!(
        source_filter_drops(&node).1 > before,
        "not counted as dropped"
    );
}

#[test]
fn a_chain_without_its_hook_is_noticed_and_hooked_by_the_next_add() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.1.0");
    let (pod, other) = (Netns::new("-hook"), Netns::new("-hook2"));
    let result = node.add("ctr-hook", &pod, &conf).assert_ok();
    // The same table with the same rules, pod-source without its hook.
    let table = node.ns.run(&["nft", "list", "table", "inet", TABLE]);
    let hookless: String = table
        .lines()
        .filter(|line| !line.contains("hook prerouting"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(hookless, table);
    node.ns.run(&["nft", "delete", "table", "inet", TABLE]);
    let file = std::env::temp_dir().join(common::unique("-hookless.nft"));
    std::fs::write(&file, &hookless).unwrap();
    node.ns.run(&["nft", "-f", file.to_str().unwrap()]);
    std::fs::remove_file(&file).ok();
    let msg = node.check("ctr-hook", &pod, &result, "1.1.0").error(11);
    assert!(msg.contains("hook"), "CHECK: {msg}");
    node.add("ctr-hook2", &other, &conf).assert_ok();
    let chain = node
        .ns
        .run(&["nft", "list", "chain", "inet", TABLE, "pod-source"]);
    assert!(chain.contains("hook prerouting priority raw"), "{chain}");
    assert!(
        node.check("ctr-hook", &pod, &result, "1.1.0")
            .assert_ok()
            .is_null()
    );
}

/// `net162789` and `net379192`: FNV-1a with the high bit set gives both
/// 0xf8d0434b, so they would share one interface group.
#[test]
fn networks_whose_names_collide_are_refused_not_shared() {
    require_root();
    let node = Node::standard();
    let named = |name: &str, extra: Value| {
        let mut conf = node.conf("1.0.0");
        conf["name"] = name.into();
        for (key, value) in extra.as_object().unwrap() {
            conf[key] = value.clone();
        }
        conf
    };
    let replies = named("net162789", json!({"overlayIngress": "replies"}));
    let open = named("net379192", json!({}));
    let (first, second) = (Netns::new("-col1"), Netns::new("-col2"));
    let result = node.add("ctr-col1", &first, &replies).assert_ok();
    let before = node.ns.state();
    let msg = node.add("ctr-col2", &second, &open).error(7);
    assert!(
        msg.contains("net379192") && msg.contains("net162789") && msg.contains("rename"),
        "{msg}"
    );
    assert_eq!(node.ns.state(), before, "the refused ADD left state");
    let check = check_conf(&replies, &result);
    let checked = node.cni("CHECK", "ctr-col1", &first.path(), "eth0", &check);
    assert_eq!(
        checked.code, 0,
        "CHECK of the first network: {}",
        checked.stdout
    );

    // The other way round: a network without chains (open, egress overlay)
    // has pods; the colliding network's first ADD finds them in its group.
    let quiet = Node::standard();
    let bare = {
        let mut conf = quiet.conf("1.0.0");
        conf["name"] = "net379192".into();
        conf["egress"] = "overlay".into();
        conf
    };
    let mut strict = quiet.conf("1.0.0");
    strict["name"] = "net162789".into();
    strict["overlayIngress"] = "replies".into();
    let (third, fourth) = (Netns::new("-col3"), Netns::new("-col4"));
    let bare_result = quiet.add("ctr-col3", &third, &bare).assert_ok();
    let msg = quiet.add("ctr-col4", &fourth, &strict).error(7);
    assert!(
        msg.contains("net162789") && msg.contains("net379192"),
        "{msg}"
    );
    let check = check_conf(&bare, &bare_result);
    let checked = quiet.cni("CHECK", "ctr-col3", &third.path(), "eth0", &check);
    assert_eq!(
        checked.code, 0,
        "CHECK of the earlier network: {}",
        checked.stdout
    );
    let chains = quiet.ns.run(&["nft", "list", "chains"]);
    assert!(!chains.contains("overlay-in-net162789"), "{chains}");

    // doctor sees the two conflists side by side.
    let dir = std::env::temp_dir().join(common::unique("-colconf"));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, conf) in [("10-a.conflist", &replies), ("20-b.conflist", &open)] {
        let list = json!({"cniVersion": "1.0.0", "name": conf["name"], "plugins": [
            {"type": "loopback"}, {"type": "mycelium-cni", "myceliumInterface": common::TUN}]});
        std::fs::write(dir.join(file), list.to_string()).unwrap();
    }
    let conf_path = dir.join("10-a.conflist");
    let doctor = Command::new("ip")
        .args([
            "netns",
            "exec",
            &node.ns.name,
            &common::binary(),
            "doctor",
            "--conf",
        ])
        .arg(&conf_path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains("FAIL  invalid config: network \"net162789\" hashes to interface group"),
        "{report}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_unspecified_source_is_only_for_duplicate_address_detection() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.0.0");
    let pod = Netns::new("-unsp");
    node.add("ctr-unsp", &pod, &conf).assert_ok();
    count_unspecified(&node.ns);
    // The pod resolves its gateway first, or the raw packet waits for it.
    assert!(pod.ping(&node.address));
    let (_, dropped_before) = source_filter_drops(&node);
    send_raw(&pod, "udp", "::", &node.address, 1);
    // An address added with DAD: its neighbour solicitation from `::`.
    pod.ip(&[
        "-6",
        "addr",
        "add",
        "5fd:a395:1a8d:501d:ff0f::d4d/128",
        "dev",
        "eth0",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (udp, dad) = unspecified_seen(&node.ns);
    assert_eq!(udp, 0, "UDP from :: reached the node");
    assert!(dad >= 1, "DAD's solicitation from :: was dropped");
    let (_, dropped_after) = source_filter_drops(&node);
    assert!(
        dropped_after > dropped_before,
        "UDP from :: was not counted"
    );
}

#[test]
fn a_solicitation_flood_from_a_pod_leaves_the_node_able_to_reach_every_pod() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.0.0");
    let (flooder, others) = (
        Netns::new("-flood"),
        [Netns::new("-fl1"), Netns::new("-fl2")],
    );
    let result = node.add("ctr-flood", &flooder, &conf).assert_ok();
    let host_veth = result["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let addresses: Vec<String> = others
        .iter()
        .enumerate()
        .map(|(i, ns)| pod_address(&node.add(&format!("ctr-fl{i}"), ns, &conf).assert_ok()))
        .collect();
    // What filled the table: 1,500 solicitations, each from its own source.
    send_raw(&flooder, "ns", "", "fe80::1", 1_500);
    let entries = node
        .ns
        .ip(&["-6", "neigh", "show", "dev", &host_veth])
        .lines()
        .count();
    assert!(
        entries <= 100,
        "{entries} neighbour entries from one pod's flood"
    );
    for address in &addresses {
        assert!(
            node.ns.ping(address),
            "node -> {address} right after the flood"
        );
    }
    let chain = node
        .ns
        .run(&["nft", "list", "chain", "inet", TABLE, "pod-source"]);
    let metered = chain
        .lines()
        .find(|line| line.contains("meter"))
        .and_then(|line| line.split("counter packets ").nth(1))
        .and_then(|after| after.split(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        metered >= 1_400,
        "the meter dropped only {metered}: {chain}"
    );
}

#[test]
fn gc_removes_a_networks_chains_with_its_last_pod() {
    require_root();
    let node = Node::standard();
    let mut conf = node.conf("1.1.0");
    conf["overlayIngress"] = "replies".into();
    let pod = Netns::new("-gcch");
    let result = node.add("ctr-gcch", &pod, &conf).assert_ok();
    let chains = node.ns.run(&["nft", "list", "chains"]);
    assert!(
        chains.contains("overlay-in-mycnet") && chains.contains("egress-mycnet"),
        "{chains}"
    );
    // GC while the pod is valid keeps them; after its DEL, GC removes them.
    let mut gc = check_conf(&conf, &result);
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "ctr-gcch", "ifname": "eth0"}]);
    assert_eq!(node.run(&[("CNI_COMMAND", "GC")], &gc.to_string()).code, 0);
    assert!(
        node.ns
            .run(&["nft", "list", "chains"])
            .contains("overlay-in-mycnet")
    );
    node.del("ctr-gcch", &pod.path(), &conf).assert_ok();
    gc["cni.dev/valid-attachments"] = json!([]);
    assert_eq!(node.run(&[("CNI_COMMAND", "GC")], &gc.to_string()).code, 0);
    let table = node.ns.run(&["nft", "list", "table", "inet", TABLE]);
    assert!(
        !table.contains("overlay-in-mycnet") && !table.contains("egress-mycnet"),
        "{table}"
    );
    assert!(!table.contains("allow-mycnet"), "{table}");
    assert!(
        table.contains("chain pod-source"),
        "the filter serves every network: {table}"
    );
}
