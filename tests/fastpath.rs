//! The source filter's fast path: sets `pods6` and `pods4` of (pod address
//! . host veth index) in `table inet mycelium-cni`. ADD adds its pod's
//! elements, DEL leaves them, GC removes those whose veth is gone or does
//! not claim the address and adds live pods' missing ones; a missing
//! element only sends the pod's packets through the `fib` rules. Root; `nft` only inspects and breaks the state.

mod common;

use common::{Netns, Node, binary, pod_address, require_root, sh, source_filter_drops};
use serde_json::{Value, json};

const TABLE: &str = "mycelium-cni";

/// Elements as (address, interface index), sorted.
type Elements = Vec<(String, u32)>;

/// The elements of set `name`.
fn elements(node: &Node, name: &str) -> Elements {
    let text = node.ns.run(&["nft", "list", "set", "inet", TABLE, name]);
    let Some(list) = text.split("elements = {").nth(1) else {
        return Vec::new();
    };
    let list = list.split('}').next().unwrap_or_default();
    let mut found: Elements = list
        .split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let (address, index) = item.split_once(" . ").expect("address . index");
            // nft names a live interface, and gives a gone one's index.
            let index = match index.trim().strip_prefix('"') {
                Some(name) => ifindex(node, name.trim_end_matches('"')),
                None => index.trim().parse().unwrap(),
            };
            (address.trim().to_string(), index)
        })
        .collect();
    found.sort();
    found
}

fn ifindex(node: &Node, name: &str) -> u32 {
    let path = format!("/sys/class/net/{name}/ifindex");
    node.ns.run(&["cat", &path]).trim().parse().unwrap()
}

fn host_veth(result: &Value) -> String {
    result["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_string()
}

fn ipv4_of(pod: &Netns) -> String {
    let text = pod.ip(&["-4", "-o", "addr", "show", "dev", "eth0"]);
    let cidr = text.split_whitespace().skip_while(|w| *w != "inet").nth(1);
    cidr.and_then(|c| c.split('/').next())
        .expect("pod IPv4 address")
        .to_string()
}

fn gc(node: &Node, conf: &Value, valid: &[&str]) {
    let mut gc = conf.clone();
    let valid: Vec<Value> = valid
        .iter()
        .map(|c| json!({"containerID": c, "ifname": "eth0"}))
        .collect();
    gc["cni.dev/valid-attachments"] = valid.into();
    let outcome = node.run(&[("CNI_COMMAND", "GC")], &gc.to_string());
    assert_eq!(outcome.code, 0, "GC: {} {}", outcome.stdout, outcome.stderr);
}

fn list(node: &Node) -> String {
    sh(&["ip", "netns", "exec", &node.ns.name, &binary(), "list"])
}

/// The pods' own (address, index) pairs, sorted like `elements`.
fn expected(node: &Node, pods: &[(Netns, Value)]) -> (Elements, Elements) {
    let mut v6 = Vec::new();
    let mut v4 = Vec::new();
    for (pod, result) in pods {
        let index = ifindex(node, &host_veth(result));
        v6.push((pod_address(result), index));
        v4.push((ipv4_of(pod), index));
    }
    v6.sort();
    v4.sort();
    (v6, v4)
}

#[test]
fn one_element_per_pod_after_50_concurrent_adds_and_gc_reaps_them() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.1.0");
    let netns: Vec<Netns> = (0..50).map(|_| Netns::new("-fp50")).collect();
    let results: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = netns
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                let (node, conf) = (&node, &conf);
                scope.spawn(move || node.add(&format!("ctr-fp{i}"), pod, conf).assert_ok())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let pods: Vec<(Netns, Value)> = netns.into_iter().zip(results).collect();
    let (want6, want4) = expected(&node, &pods);
    assert_eq!(elements(&node, "pods6"), want6, "pods6: each pod's own");
    assert_eq!(elements(&node, "pods4"), want4, "pods4: each pod's own");
    assert!(
        list(&node).contains("fast path: 100 elements, 0 stale"),
        "list: {}",
        list(&node)
    );

    // DEL leaves the elements (their indexes die with the veths).
    std::thread::scope(|scope| {
        for (i, (pod, _)) in pods.iter().enumerate().skip(1) {
            let (node, conf) = (&node, &conf);
            scope.spawn(move || {
                node.del(&format!("ctr-fp{i}"), &pod.path(), conf)
                    .assert_ok()
            });
        }
    });
    assert_eq!(elements(&node, "pods6").len(), 50, "DEL left the elements");
    assert!(
        list(&node).contains("fast path: 100 elements, 98 stale"),
        "list: {}",
        list(&node)
    );
    // GC keeps only the live pod's (ctr-fp0's) elements.
    gc(&node, &conf, &["ctr-fp0"]);
    assert_eq!(
        elements(&node, "pods6"),
        vec![want6_of(&node, &pods[0])],
        "GC left only the live pod's IPv6 element"
    );
    assert_eq!(
        elements(&node, "pods4").len(),
        1,
        "GC left only the live pod's IPv4 element"
    );
    node.del("ctr-fp0", &pods[0].0.path(), &conf).assert_ok();
    gc(&node, &conf, &[]);
    assert!(
        elements(&node, "pods6").is_empty() && elements(&node, "pods4").is_empty(),
        "GC with no pod left none"
    );
}

fn want6_of(node: &Node, (_, result): &(Netns, Value)) -> (String, u32) {
    (pod_address(result), ifindex(node, &host_veth(result)))
}

#[test]
fn a_pod_without_its_element_still_sends_and_check_warns() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.1.0");
    let (pod_a, pod_b) = (Netns::new("-fpa"), Netns::new("-fpb"));
    let result_a = node.add("ctr-fpa", &pod_a, &conf).assert_ok();
    let address_b = pod_address(&node.add("ctr-fpb", &pod_b, &conf).assert_ok());
    let check = node.check("ctr-fpa", &pod_a, &result_a, "1.1.0");
    assert_eq!(check.code, 0, "CHECK with the element: {}", check.stdout);
    assert!(!check.stderr.contains("slow path"), "{}", check.stderr);

    let index = ifindex(&node, &host_veth(&result_a));
    let element = format!("{{ {} . {index} }}", pod_address(&result_a));
    node.ns
        .run(&["nft", "delete", "element", "inet", TABLE, "pods6", &element]);
    let element4 = format!("{{ {} . {index} }}", ipv4_of(&pod_a));
    node.ns.run(&[
        "nft", "delete", "element", "inet", TABLE, "pods4", &element4,
    ]);
    let drops_before = source_filter_drops(&node);
    assert!(pod_a.ping(&address_b), "slow path: IPv6 to the neighbour");
    assert!(pod_a.ping(&node.address), "slow path: IPv6 to the node");
    assert!(
        pod_a.exec(&["ping", "-4", "-c", "1", "-W", "2", "169.254.1.1"]),
        "slow path: IPv4 to the gateway"
    );
    assert_eq!(source_filter_drops(&node), drops_before, "nothing dropped");
    let check = node.check("ctr-fpa", &pod_a, &result_a, "1.1.0");
    assert_eq!(check.code, 0, "CHECK without the element: {}", check.stdout);
    assert_eq!(
        check.stderr.matches("slow path").count(),
        2,
        "CHECK warns for both families: {}",
        check.stderr
    );
    let listed = list(&node);
    assert!(
        listed.contains("2 pod addresses on the slow path"),
        "list: {listed}"
    );

    // GC puts them back.
    gc(&node, &conf, &["ctr-fpa", "ctr-fpb"]);
    let restored = elements(&node, "pods6").contains(&(pod_address(&result_a), index));
    assert!(restored, "GC restored the IPv6 element");
    let restored = elements(&node, "pods4").contains(&(ipv4_of(&pod_a), index));
    assert!(restored, "GC restored the IPv4 element");
    let check = node.check("ctr-fpa", &pod_a, &result_a, "1.1.0");
    assert!(!check.stderr.contains("slow path"), "{}", check.stderr);
}

/// The neighbour's element exists (on the neighbour's veth): a pod sending
/// with the neighbour's address still meets `fib` and is dropped; an
/// element that names the neighbour's address on the spoofer's veth fails
/// CHECK and doctor-style listing, and GC removes it.
#[test]
fn a_neighbours_element_lets_no_spoofing_through() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.1.0");
    let (pod_a, pod_b) = (Netns::new("-fps"), Netns::new("-fpv"));
    let result_a = node.add("ctr-fps", &pod_a, &conf).assert_ok();
    let result_b = node.add("ctr-fpv", &pod_b, &conf).assert_ok();
    let address_b = pod_address(&result_b);
    let index_b = ifindex(&node, &host_veth(&result_b));
    assert!(
        elements(&node, "pods6").contains(&(address_b.clone(), index_b)),
        "the neighbour's element exists"
    );
    let forged = format!("{address_b}/128");
    pod_a.ip(&["-6", "addr", "add", &forged, "dev", "eth0", "nodad"]);
    let (_, before) = source_filter_drops(&node);
    let sent = pod_a.exec(&[
        "ping",
        "-6",
        "-c",
        "2",
        "-W",
        "1",
        "-I",
        &address_b,
        &node.address,
    ]);
    assert!(!sent, "forged as the neighbour, got a reply");
    let (_, after) = source_filter_drops(&node);
    assert!(after >= before + 2, "dropped by fib: {before} -> {after}");
    pod_a.ip(&["-6", "addr", "del", &forged, "dev", "eth0"]);

    // A foreign element (the neighbour's address on a's veth), by hand.
    let index_a = ifindex(&node, &host_veth(&result_a));
    let element = format!("{{ {address_b} . {index_a} }}");
    node.ns
        .run(&["nft", "add", "element", "inet", TABLE, "pods6", &element]);
    let msg = node.check("ctr-fps", &pod_a, &result_a, "1.1.0").error(102);
    assert!(msg.contains("does not claim"), "CHECK: {msg}");
    let listed = list(&node);
    assert!(
        listed.contains("not claimed by that veth"),
        "list: {listed}"
    );
    gc(&node, &conf, &["ctr-fps", "ctr-fpv"]);
    assert!(
        !elements(&node, "pods6").contains(&(address_b.clone(), index_a)),
        "GC removed the foreign element"
    );
    assert!(
        elements(&node, "pods6").contains(&(address_b, index_b)),
        "GC kept the neighbour's own"
    );
    let check = node.check("ctr-fps", &pod_a, &result_a, "1.1.0");
    assert_eq!(check.code, 0, "CHECK after GC: {}", check.stdout);
}

/// The sets belong to the filter: without them (and so without the rules
/// that look them up) CHECK fails with code 11; the next ADD restores
/// table, sets and chain, and GC the live pods' elements.
#[test]
fn deleted_sets_are_restored_by_add_and_their_elements_by_gc() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.1.0");
    let (pod_a, pod_b) = (Netns::new("-fpd"), Netns::new("-fpe"));
    let result_a = node.add("ctr-fpd", &pod_a, &conf).assert_ok();
    let index_a = ifindex(&node, &host_veth(&result_a));
    node.ns
        .run(&["nft", "delete", "chain", "inet", TABLE, "pod-source"]);
    node.ns
        .run(&["nft", "delete", "set", "inet", TABLE, "pods6"]);
    let msg = node.check("ctr-fpd", &pod_a, &result_a, "1.1.0").error(11);
    assert!(msg.contains("source filter"), "CHECK: {msg}");
    node.add("ctr-fpe", &pod_b, &conf).assert_ok();
    let sets = node.ns.run(&["nft", "list", "sets", "inet"]);
    assert!(sets.contains("set pods6"), "ADD restored the set: {sets}");
    let mine = (pod_address(&result_a), index_a);
    assert!(
        !elements(&node, "pods6").contains(&mine),
        "no element of a yet"
    );
    gc(&node, &conf, &["ctr-fpd", "ctr-fpe"]);
    assert!(
        elements(&node, "pods6").contains(&mine),
        "GC restored a's element"
    );
    assert_eq!(elements(&node, "pods6").len(), 2, "one per pod");

    // The whole table deleted: GC alone restores it, elements included.
    node.ns.run(&["nft", "delete", "table", "inet", TABLE]);
    gc(&node, &conf, &["ctr-fpd", "ctr-fpe"]);
    assert_eq!(
        elements(&node, "pods6").len(),
        2,
        "GC restored both elements"
    );
    assert_eq!(elements(&node, "pods4").len(), 2, "and both IPv4 ones");
    let check = node.check("ctr-fpd", &pod_a, &result_a, "1.1.0");
    assert_eq!(check.code, 0, "CHECK: {}", check.stdout);
}

#[test]
fn a_recreated_veth_does_not_inherit_an_old_element() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.1.0");
    let pod = Netns::new("-fpr");
    let first = node.add("ctr-fpr", &pod, &conf).assert_ok();
    let old_index = ifindex(&node, &host_veth(&first));
    node.ns.ip(&["link", "del", &host_veth(&first)]);
    let second = node.add("ctr-fpr", &pod, &conf).assert_ok();
    let new_index = ifindex(&node, &host_veth(&second));
    assert_ne!(new_index, old_index, "the kernel gave a new index");
    let on_new: Elements = elements(&node, "pods6")
        .into_iter()
        .filter(|(_, index)| *index == new_index)
        .collect();
    assert_eq!(
        on_new,
        vec![(pod_address(&second), new_index)],
        "the new veth holds only its pod's element"
    );
    let listed = list(&node);
    assert!(
        listed.contains("2 stale"),
        "old IPv6 and IPv4 elements: {listed}"
    );
    gc(&node, &conf, &["ctr-fpr"]);
    assert!(
        elements(&node, "pods6")
            .iter()
            .chain(&elements(&node, "pods4"))
            .all(|(_, index)| *index == new_index),
        "GC removed the old veth's elements"
    );
    let check = node.check("ctr-fpr", &pod, &second, "1.1.0");
    assert_eq!(check.code, 0, "CHECK: {}", check.stdout);
    assert!(!check.stderr.contains("slow path"), "{}", check.stderr);
}

/// MYCELIUM_CNI_TEST_NO_FAST_PATH (what scripts/bench.sh times ADD without
/// the element by) is obeyed by the tests' build only.
#[test]
fn release_binary_has_no_fast_path_knob() {
    require_root();
    let knob = [("MYCELIUM_CNI_TEST_NO_FAST_PATH", "1")];
    let release = Node::standard();
    let conf = release.conf("1.1.0");
    let pod = Netns::new("-fpk");
    let result = release
        .cni_with(&knob, "ADD", "ctr-fpk", &pod.path(), "eth0", &conf)
        .assert_ok();
    assert_eq!(
        elements(&release, "pods6"),
        vec![want6_of(&release, &(pod, result))],
        "the release binary obeyed the knob"
    );

    let hooked = Node::standard().with_test_hooks();
    let pod = Netns::new("-fpk");
    hooked
        .cni_with(&knob, "ADD", "ctr-fpk", &pod.path(), "eth0", &conf)
        .assert_ok();
    assert!(
        elements(&hooked, "pods6").is_empty(),
        "the hooks build ignored the knob"
    );
}
