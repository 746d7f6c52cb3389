//! Requested addresses: `runtimeConfig.ips` (capability `ips`) and
//! CNI_ARGS `IP=`, as podman's --ip6 and Multus ask for them. The address is
//! claimed like a derived one (the exclusive /128 host route), so two pods
//! never hold one address. Root.

mod common;

use common::{Netns, Node, pod_address, require_root};
use serde_json::Value;

const PREFIX: &str = "5fd:a395:1a8d:501d:";

fn add_asking(node: &Node, container: &str, pod: &Netns, ip: &str) -> common::Outcome {
    let args = format!("IP={ip}");
    node.cni_with(
        &[("CNI_ARGS", &args)],
        "ADD",
        container,
        &pod.path(),
        "eth0",
        &node.conf("1.0.0"),
    )
}

fn conf_asking(node: &Node, ips: &[&str]) -> Value {
    let mut conf = node.conf("1.0.0");
    conf["runtimeConfig"] = serde_json::json!({ "ips": ips });
    conf
}

#[test]
fn ip_arg_and_runtime_config_give_exactly_that_address() {
    require_root();
    let node = Node::standard();
    let (pod_a, pod_b) = (Netns::new("-ipa"), Netns::new("-ipb"));
    let wanted_a = format!("{PREFIX}:10");
    let wanted_b = format!("{PREFIX}:11");

    // IP= without IgnoreUnknown: a key the plugin knows.
    let result_a = add_asking(&node, "ctr-ipa", &pod_a, &wanted_a).assert_ok();
    assert_eq!(
        result_a["ips"][0]["address"],
        format!("{wanted_a}/128"),
        "IP= address in the result"
    );
    let conf_b = conf_asking(&node, &[&format!("{wanted_b}/64")]);
    let result_b = node.add("ctr-ipb", &pod_b, &conf_b).assert_ok();
    assert_eq!(
        pod_address(&result_b),
        wanted_b,
        "runtimeConfig.ips address in the result"
    );

    for (pod, wanted) in [(&pod_a, &wanted_a), (&pod_b, &wanted_b)] {
        let held = pod.ip(&["-6", "addr", "show", "dev", "eth0"]);
        assert!(held.contains(&format!("{wanted}/128")), "pod holds: {held}");
        let route = node
            .ns
            .ip(&["-6", "route", "show", &format!("{wanted}/128")]);
        assert!(
            route.contains("dev myc"),
            "host route to {wanted}: {route:?}"
        );
        assert!(node.ns.ping(wanted), "node -> {wanted}");
    }
    assert!(pod_a.ping(&wanted_b), "pod a -> pod b");
    node.check("ctr-ipa", &pod_a, &result_a, "1.0.0")
        .assert_ok();
    node.check("ctr-ipb", &pod_b, &result_b, "1.0.0")
        .assert_ok();
    node.del("ctr-ipa", &pod_a.path(), &node.conf("1.0.0"))
        .assert_ok();
    node.del("ctr-ipb", &pod_b.path(), &conf_b).assert_ok();
    assert!(node.host_veths().is_empty(), "veths after DEL");
}

/// Each refused ADD (taken, outside the /64, the node's own, malformed,
/// IPv4) gives its code and message, and leaves the node and the pod
/// exactly as before; the DEL a runtime then runs succeeds.
#[test]
fn refused_requests_leave_nothing_behind() {
    require_root();
    let node = Node::standard();
    let holder = Netns::new("-hold");
    let taken = format!("{PREFIX}:20");
    add_asking(&node, "ctr-hold", &holder, &taken).assert_ok();

    let node_address = node.address.clone();
    let cases: [(&str, u64, &str); 6] = [
        (&taken, 103, "is already in use on this node"),
        (
            "4aa:1:2:3::20",
            7,
            "requested address 4aa:1:2:3::20 (CNI_ARGS IP) is outside this node's /64 5fd:a395:1a8d:501d::/64",
        ),
        (&node_address, 7, "is the node's own Mycelium address"),
        (
            "5fd:a395:1a8d:501d::zz",
            4,
            "invalid CNI_ARGS IP \"5fd:a395:1a8d:501d::zz\"",
        ),
        (
            "10.42.0.7",
            7,
            "requested IPv4 address 10.42.0.7 (CNI_ARGS IP): mycelium-cni gives pods IPv6 addresses",
        ),
        (
            &format!("{PREFIX}:21,{PREFIX}:22"),
            7,
            "more than one IPv6 address requested",
        ),
    ];
    for (i, (ip, code, says)) in cases.iter().enumerate() {
        let pod = Netns::new("-ref");
        let (node_before, pod_before) = (node.ns.state(), pod.state());
        let container = format!("ctr-ref{i}");
        let msg = add_asking(&node, &container, &pod, ip).error(*code);
        assert!(msg.contains(says), "IP={ip}: {msg}");
        assert_eq!(node.ns.state(), node_before, "IP={ip}: node changed");
        assert_eq!(pod.state(), pod_before, "IP={ip}: pod changed");
        node.del(&container, &pod.path(), &node.conf("1.0.0"))
            .assert_ok();
    }
    // The same refusals come from runtimeConfig.ips, with code 7.
    let pod = Netns::new("-rc");
    let msg = node
        .add("ctr-rc", &pod, &conf_asking(&node, &["4aa:1:2:3::20/64"]))
        .error(7);
    assert!(msg.contains("(runtimeConfig.ips) is outside"), "{msg}");
    let msg = node
        .add("ctr-rc", &pod, &conf_asking(&node, &["nope"]))
        .error(7);
    assert!(msg.contains("runtimeConfig.ips[0] \"nope\""), "{msg}");
    // The DEL a runtime sends after that failed ADD carries the same
    // runtimeConfig, and must succeed.
    node.del("ctr-rc", &pod.path(), &conf_asking(&node, &["nope"]))
        .assert_ok();
    let msg = node
        .add("ctr-rc", &pod, &conf_asking(&node, &[&taken]))
        .error(103);
    assert!(msg.contains(&taken), "{msg}");
    assert_eq!(node.host_veths().len(), 1, "only the holder's veth");
    assert!(holder.ping(&node.address), "the holder still works");
}

/// A derived ADD steps past an address a requested ADD holds: with one
/// bit of hash the derived candidates are ...:ff0f::0 and ...:ff0f::1.
#[test]
fn derived_candidates_step_past_a_requested_address() {
    require_root();
    // The hash-bits knob is only in the test-hooks build.
    let node = Node::standard().with_test_hooks();
    let (asked, derived) = (Netns::new("-ask"), Netns::new("-der"));
    let held = format!("{PREFIX}ff0f::");
    add_asking(&node, "ctr-ask", &asked, &held).assert_ok();
    let outcome = node.cni_with(
        &[("MYCELIUM_CNI_TEST_HASH_BITS", "1")],
        "ADD",
        "ctr-der",
        &derived.path(),
        "eth0",
        &node.conf("1.0.0"),
    );
    assert_eq!(
        pod_address(&outcome.assert_ok()),
        format!("{PREFIX}ff0f::1")
    );
}

#[test]
fn twenty_concurrent_requests_for_twenty_addresses() {
    require_root();
    let node = Node::standard();
    let pods: Vec<Netns> = (0..20).map(|_| Netns::new("-c20")).collect();
    let wanted: Vec<String> = (0..20)
        .map(|i| format!("{PREFIX}:{:x}", 0x100 + i))
        .collect();
    let got: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = pods
            .iter()
            .zip(&wanted)
            .enumerate()
            .map(|(i, (pod, ip))| {
                let node = &node;
                scope.spawn(move || {
                    let outcome = if i % 2 == 0 {
                        add_asking(node, &format!("ctr-c{i}"), pod, ip)
                    } else {
                        node.add(&format!("ctr-c{i}"), pod, &conf_asking(node, &[ip]))
                    };
                    pod_address(&outcome.assert_ok())
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("ADD thread"))
            .collect()
    });
    assert_eq!(got, wanted, "each ADD got the address it asked for");
    assert_eq!(node.host_veths().len(), 20, "host veths");
    for (pod, ip) in pods.iter().zip(&wanted) {
        assert!(pod.ping(&node.address), "{ip} -> node");
    }
    for (i, pod) in pods.iter().enumerate() {
        node.del(&format!("ctr-c{i}"), &pod.path(), &node.conf("1.0.0"))
            .assert_ok();
    }
    assert!(node.host_veths().is_empty(), "veths after DEL");
    let routes = node.ns.ip(&["-6", "route"]);
    assert!(
        !routes.contains(&format!("{PREFIX}:1")),
        "routes left: {routes}"
    );
}

/// Eight ADDs racing for one address: the exclusive /128 route lets exactly
/// one through; the others fail with 103 and leave nothing.
#[test]
fn eight_adds_racing_for_one_address() {
    require_root();
    let node = Node::standard();
    let pods: Vec<Netns> = (0..8).map(|_| Netns::new("-race")).collect();
    let wanted = format!("{PREFIX}:77");
    let outcomes: Vec<common::Outcome> = std::thread::scope(|scope| {
        let runs: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                let (node, wanted) = (&node, &wanted);
                scope.spawn(move || add_asking(node, &format!("ctr-r{i}"), pod, wanted))
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("ADD thread"))
            .collect()
    });
    let won: Vec<_> = outcomes.iter().filter(|o| o.code == 0).collect();
    assert_eq!(won.len(), 1, "winners");
    assert_eq!(pod_address(&won[0].json()), wanted);
    for lost in outcomes.iter().filter(|o| o.code != 0) {
        let msg = lost.error(103);
        assert!(msg.contains("is already in use"), "{msg}");
    }
    assert_eq!(node.host_veths().len(), 1, "veths: {:?}", node.host_veths());
    let eth0s = pods
        .iter()
        .filter(|pod| pod.exec(&["ip", "link", "show", "eth0"]))
        .count();
    assert_eq!(eth0s, 1, "pods with an eth0");
}
