//! Concurrency, crashes, hostile input and host safety. Root.

mod common;

use common::{Netns, Node, TUN, pod_address, require_root, sh};
use serde_json::{Value, json};
use std::collections::HashSet;

const PREFIX: &str = "5fd:a395:1a8d:501d:ff0f:";

/// No veth, /128 route or alias of the test network is left on the node.
fn assert_node_clean(node: &Node, context: &str) {
    assert!(
        node.host_veths().is_empty(),
        "{context}: veths left: {:?}",
        node.host_veths()
    );
    let routes = node.ns.ip(&["-6", "route", "show", "table", "all"]);
    assert!(!routes.contains(PREFIX), "{context}: routes left: {routes}");
    let links = node.ns.ip(&["-d", "link", "show"]);
    assert!(
        !links.contains("alias mycnet/"),
        "{context}: aliases left: {links}"
    );
}

/// Runs `count` ADDs at once (one thread each) and returns the addresses.
fn add_all(node: &Node, pods: &[Netns], conf: &Value, extra: &[(&str, &str)]) -> Vec<String> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                scope.spawn(move || {
                    let outcome =
                        node.cni_with(extra, "ADD", &format!("ctr-{i}"), &pod.path(), "eth0", conf);
                    pod_address(&outcome.assert_ok())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("ADD thread"))
            .collect()
    })
}

fn del_all(node: &Node, pods: &[Netns], conf: &Value, extra: &[(&str, &str)]) {
    std::thread::scope(|scope| {
        for (i, pod) in pods.iter().enumerate() {
            scope.spawn(move || {
                node.cni_with(extra, "DEL", &format!("ctr-{i}"), &pod.path(), "eth0", conf)
                    .assert_ok()
            });
        }
    });
}

fn assert_unique_in_prefix(addresses: &[String]) {
    let unique: HashSet<_> = addresses.iter().collect();
    assert_eq!(
        unique.len(),
        addresses.len(),
        "duplicate addresses: {addresses:?}"
    );
    assert!(
        addresses.iter().all(|a| a.starts_with(PREFIX)),
        "{addresses:?}"
    );
}

#[test]
fn parallel_adds_and_dels_then_a_storm() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.0.0");
    let pods: Vec<Netns> = (0..64).map(|_| Netns::new("-par")).collect();
    let addresses = add_all(&node, &pods, &conf, &[]);
    assert_unique_in_prefix(&addresses);
    assert_eq!(node.host_veths().len(), 64);
    assert!(pods[63].ping(&addresses[0]), "pod 63 -> pod 0");
    del_all(&node, &pods, &conf, &[]);
    assert_node_clean(&node, "after 64 parallel DELs");

    // Storm: 16 workers, each owning 4 containers (a runtime never runs two
    // commands for one container at once), toggling ADD/DEL in an order
    // driven by a small LCG: 320 operations in all.
    std::thread::scope(|scope| {
        for worker in 0..16 {
            let (node, conf, pods) = (&node, &conf, &pods);
            scope.spawn(move || {
                let mut state = [false; 4];
                let mut seed: u32 = 0x9e37_79b9 ^ worker;
                for _ in 0..20 {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let slot = (seed >> 28) as usize % 4;
                    let index = worker as usize * 4 + slot;
                    let command = if state[slot] { "DEL" } else { "ADD" };
                    let pod = &pods[index];
                    node.cni(command, &format!("ctr-{index}"), &pod.path(), "eth0", conf)
                        .assert_ok();
                    state[slot] = !state[slot];
                }
                for (slot, added) in state.iter().enumerate() {
                    if *added {
                        let index = worker as usize * 4 + slot;
                        node.cni(
                            "DEL",
                            &format!("ctr-{index}"),
                            &pods[index].path(),
                            "eth0",
                            conf,
                        )
                        .assert_ok();
                    }
                }
            });
        }
    });
    assert_node_clean(&node, "after the storm");
}

/// 6 bits of hash: 64 names and 64 addresses for 24 pods, so ADDs collide
/// on both and must take the next attempt, concurrently.
#[test]
fn forced_collisions_under_concurrency() {
    require_root();
    let node = Node::standard().with_test_hooks();
    let conf = node.conf("1.0.0");
    let hook = [("MYCELIUM_CNI_TEST_HASH_BITS", "6")];
    let pods: Vec<Netns> = (0..24).map(|_| Netns::new("-col")).collect();
    for round in 0..3 {
        let addresses = add_all(&node, &pods, &conf, &hook);
        assert_unique_in_prefix(&addresses);
        for pod in &pods {
            assert!(pod.ping(&node.address), "round {round}");
        }
        let veths = node.host_veths();
        assert_eq!(veths.len(), 24, "round {round}: {veths:?}");
        del_all(&node, &pods, &conf, &hook);
        assert_node_clean(&node, &format!("collision round {round}"));
    }
}

/// SIGKILL before each netlink request of ADD, then DEL (and, once the
/// alias is written, GC instead): the node and the pod end up exactly as
/// before the ADD.
#[test]
fn killed_mid_add_leaves_nothing_after_del_or_gc() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.1.0");
    // One full ADD/DEL first, so forwarding and accept_ra are already set
    // (those host changes are intended and not undone).
    let warm = Netns::new("-warm");
    node.add("ctr-warm", &warm, &conf).assert_ok();
    node.del("ctr-warm", &warm.path(), &conf).assert_ok();
    let node_before = node.ns.state();
    let sysctls_before = sysctls(&node);

    // The table is in place since the warm-up.
    let requests = common::add_requests(true);
    let created = common::request_number(&requests, "create the veth pair");
    let labelled_by = common::request_number(&requests, "alias of the host veth");
    for n in 1..=requests.len() + 1 {
        let pod = Netns::new("-kill");
        // lo up, as the loopback plugin leaves it: ADD sets it up too and DEL
        // rightly leaves it so.
        pod.ip(&["link", "set", "lo", "up"]);
        let pod_before = pod.state();
        let container = format!("ctr-kill-{n}");
        let path = pod.path();
        let killed = node.killed_add_at_request(n, &container, &path, &conf);
        if n > requests.len() {
            // Past the last request: ADD completes, so the count above is right.
            killed.assert_ok();
            node.del(&container, &path, &conf).assert_ok();
            assert_eq!(node.ns.state(), node_before);
            continue;
        }
        assert_ne!(killed.code, 0, "request {n}: ADD was not killed");
        assert!(
            killed.stdout.is_empty(),
            "request {n}: killed ADD printed {}",
            killed.stdout
        );
        let labelled = node
            .ns
            .ip(&["-d", "link", "show"])
            .contains(&format!("alias mycnet/{container}/"));
        // The pair exists once its request was sent, and so does the alias.
        assert_eq!(
            node.host_veths().len(),
            usize::from(n > created),
            "request {n}"
        );
        assert_eq!(labelled, n > labelled_by, "request {n}");
        // The last one by DEL: GC of the network's last pod removes its
        // chains, and the completing ADD after it must find them in place.
        if n % 2 == 0 && labelled && n < requests.len() {
            let mut gc = conf.clone();
            gc["cni.dev/valid-attachments"] = json!([]);
            let outcome = node.run(&[("CNI_COMMAND", "GC")], &gc.to_string());
            assert_eq!(outcome.code, 0, "request {n}: GC {}", outcome.stdout);
        } else {
            node.del(&container, &path, &conf).assert_ok();
        }
        assert_eq!(
            node.ns.state(),
            node_before,
            "request {n}: node state differs"
        );
        assert_eq!(pod.state(), pod_before, "request {n}: pod state differs");
        assert_eq!(
            sysctls(&node),
            sysctls_before,
            "request {n}: sysctls differ"
        );
    }
}

fn sysctls(node: &Node) -> String {
    node.ns.run(&[
        "sysctl",
        "-a",
        "--pattern",
        "^net\\.ipv6\\.conf\\.(all|default|lo|mctun0)\\.",
    ])
}

/// Each hostile input gets its CNI error code, a non-zero exit, one JSON
/// document on stdout, and leaves the node and the pod untouched.
#[test]
fn hostile_input_table() {
    require_root();
    let node = Node::standard();
    let pod = Netns::new("-bad");
    let conf = node.conf("1.0.0").to_string();
    let dir = std::env::temp_dir().join(common::unique("-files"));
    std::fs::create_dir_all(&dir).unwrap();
    let regular = dir.join("regular");
    std::fs::write(&regular, "x").unwrap();
    let symlink = dir.join("symlink");
    std::os::unix::fs::symlink("/etc/hostname", &symlink).unwrap();
    // Opening a FIFO for reading waits for a writer: the plugin must not.
    let fifo = dir.join("fifo");
    sh(&["mkfifo", fifo.to_str().unwrap()]);
    let fifo = fifo.to_str().unwrap().to_string();
    let (regular, symlink, directory) = (
        regular.to_str().unwrap().to_string(),
        symlink.to_str().unwrap().to_string(),
        dir.to_str().unwrap().to_string(),
    );
    let huge = format!(
        "{{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"pad\":\"{}\"}}",
        "x".repeat(10 << 20)
    );
    let path = pod.path();
    // Bad stdin, with a good environment.
    let stdin_cases: [(&str, &str, u64); 7] = [
        ("empty stdin", "", 6),
        ("malformed json", "{not json", 6),
        ("truncated json", &conf[..conf.len() / 2], 6),
        ("10 MB stdin", &huge, 7),
        ("wrong type", r#"{"cniVersion":"1.0.0","name":5}"#, 7),
        (
            "mtu wrong type",
            r#"{"cniVersion":"1.0.0","name":"n","mtu":"x"}"#,
            7,
        ),
        ("unknown version", r#"{"cniVersion":"9.9.9","name":"n"}"#, 1),
    ];
    // Bad environment (container ID, CNI_NETNS, ifname), with a good config.
    let own = node.ns.path();
    let env_cases: [(&str, &str, &str, &str); 19] = [
        ("empty container id", "", &path, "eth0"),
        ("empty netns", "c", "", "eth0"),
        ("empty ifname", "c", &path, ""),
        ("16-byte ifname", "c", &path, "abcdefghijklmnop"),
        ("slash ifname", "c", &path, "a/b"),
        ("dotdot ifname", "c", &path, ".."),
        ("space ifname", "c", &path, "a b"),
        ("control ifname", "c", &path, "a\u{1b}b"),
        ("slash container id", "a/b", &path, "eth0"),
        ("space container id", "a b", &path, "eth0"),
        ("control container id", "a\u{7}", &path, "eth0"),
        ("netns missing", "c", "/var/run/netns/mcni-nope", "eth0"),
        ("netns regular file", "c", &regular, "eth0"),
        ("netns directory", "c", &directory, "eth0"),
        ("netns symlink to file", "c", &symlink, "eth0"),
        ("host's own netns", "c", &own, "eth0"),
        ("netns fifo", "c", &fifo, "eth0"),
        ("netns /dev/zero", "c", "/dev/zero", "eth0"),
        ("mount namespace", "c", "/proc/self/ns/mnt", "eth0"),
    ];
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, u64);
    let add = |container, netns, ifname| {
        vec![
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", container),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", ifname),
        ]
    };
    let mut cases: Vec<Case> = Vec::new();
    for (case, stdin, code) in stdin_cases {
        cases.push((case, add("c", &path, "eth0"), stdin, code));
    }
    for (case, container, netns, ifname) in env_cases {
        cases.push((case, add(container, netns, ifname), &conf, 4));
    }
    let mut unknown_args = add("c", &path, "eth0");
    unknown_args.push(("CNI_ARGS", "FOO=bar"));
    cases.push(("unknown CNI_ARGS", unknown_args, &conf, 2));
    cases.push(("no env", vec![("CNI_COMMAND", "ADD")], &conf, 4));
    cases.push(("unknown command", vec![("CNI_COMMAND", "ATTACH")], &conf, 4));
    let node_before = node.ns.state();
    let pod_before = pod.state();
    for (case, env, stdin, code) in cases {
        let outcome = node.run(&env, stdin);
        assert_eq!(
            outcome.stdout.lines().count(),
            1,
            "{case}: {:?}",
            outcome.stdout
        );
        let msg = outcome.error(code);
        assert!(!msg.is_empty(), "{case}");
        assert_eq!(node.ns.state(), node_before, "{case}: node changed");
        assert_eq!(pod.state(), pod_before, "{case}: pod changed");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A renamed Mycelium interface is reported by its configured name; a
/// foreign route on a candidate address and a foreign link on a candidate
/// name are stepped around and left alone.
#[test]
fn renamed_interface_and_foreign_claims() {
    require_root();
    let node = Node::standard().with_test_hooks();
    let conf = node.conf("1.0.0");
    let hook = [("MYCELIUM_CNI_TEST_HASH_BITS", "1")];
    let pod = Netns::new("-ren");

    node.ns.ip(&["link", "set", TUN, "down"]);
    node.ns.ip(&["link", "set", TUN, "name", "renamed0"]);
    node.ns.ip(&["link", "set", "renamed0", "up"]);
    let msg = node.add("ctr-ren", &pod, &conf).error(11);
    assert_eq!(msg, "failed to find interface mctun0");
    node.ns.ip(&["link", "set", "renamed0", "down"]);
    node.ns.ip(&["link", "set", "renamed0", "name", TUN]);
    node.ns.ip(&["link", "set", TUN, "up"]);
    // Taking the link down may or may not have dropped the address.
    common::try_sh(&[
        "ip",
        "-n",
        &node.ns.name,
        "-6",
        "addr",
        "add",
        &format!("{}/7", node.address),
        "dev",
        TUN,
    ]);

    // With 1 bit of hash the candidates are ...:ff0f:0:0:0 and ...:ff0f:0:0:1.
    let foreign_route = "5fd:a395:1a8d:501d:ff0f::/128";
    node.ns
        .ip(&["-6", "route", "add", foreign_route, "dev", "lo"]);
    let result = node
        .cni_with(&hook, "ADD", "ctr-ren", &pod.path(), "eth0", &conf)
        .assert_ok();
    assert_eq!(pod_address(&result), "5fd:a395:1a8d:501d:ff0f::1");
    assert!(pod.ping(&node.address));
    // Both derivable names taken (ours, and a foreign link on the other):
    // a second ADD finds no free name, fails, and touches neither.
    let ours = result["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let foreign = if ours == "myc000000000000" {
        "myc000000000001"
    } else {
        "myc000000000000"
    };
    node.ns.ip(&[
        "link", "add", foreign, "type", "veth", "peer", "name", "foreign0",
    ]);
    let pod2 = Netns::new("-ren2");
    let msg = node
        .cni_with(&hook, "ADD", "ctr-ren2", &pod2.path(), "eth0", &conf)
        .error(5);
    assert!(msg.contains("no free host veth name"), "{msg}");
    assert!(
        pod.ping(&node.address),
        "first pod broken by the failed ADD"
    );
    node.cni_with(&hook, "DEL", "ctr-ren2", &pod2.path(), "eth0", &conf)
        .assert_ok();
    node.cni_with(&hook, "DEL", "ctr-ren", &pod.path(), "eth0", &conf)
        .assert_ok();
    let routes = node.ns.ip(&["-6", "route"]);
    assert!(
        routes.contains("5fd:a395:1a8d:501d:ff0f:: dev lo"),
        "foreign route removed: {routes}"
    );
    assert!(
        node.ns.ip(&["link", "show", foreign]).contains(foreign),
        "foreign link removed"
    );
    assert!(
        !node.ns.ip(&["link", "show"]).contains(&ours),
        "our veth left"
    );
}

/// Turning on forwarding must not stop an uplink with accept_ra=1 from
/// learning its default route from router advertisements.
#[test]
fn uplink_keeps_accepting_router_advertisements() {
    require_root();
    let node = Node::standard();
    let router = Netns::new("-rtr");
    node.ns.ip(&[
        "link",
        "add",
        "uplink0",
        "type",
        "veth",
        "peer",
        "name",
        "down0",
        "netns",
        &router.name,
    ]);
    node.ns
        .run(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"]);
    node.ns
        .run(&["sysctl", "-qw", "net.ipv6.conf.uplink0.accept_ra=1"]);
    node.ns.ip(&["link", "set", "uplink0", "up"]);
    router.ip(&["link", "set", "down0", "up"]);

    let pod = Netns::new("-ra");
    let outcome = node.add("ctr-ra", &pod, &node.conf("1.0.0"));
    outcome.assert_ok();
    assert!(
        outcome.stderr.contains("net.ipv6.conf.uplink0.accept_ra=2"),
        "{}",
        outcome.stderr
    );
    let forwarding = node
        .ns
        .run(&["sysctl", "-n", "net.ipv6.conf.uplink0.forwarding"]);
    assert_eq!(forwarding.trim(), "1");

    // The router advertises itself as default router; the node must take it.
    let mut learned = false;
    for _ in 0..30 {
        send_router_advertisement(&router, "down0");
        if node
            .ns
            .ip(&["-6", "route", "show", "default"])
            .contains("dev uplink0")
        {
            learned = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        learned,
        "no default route learned: {}",
        node.ns.ip(&["-6", "route"])
    );
}

/// An ICMPv6 router advertisement (type 134, hop limit 255, router lifetime
/// 1800 s) to all nodes, from a raw socket in the router namespace.
fn send_router_advertisement(router: &Netns, interface: &str) {
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)\n\
         s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'{interface}')\n\
         ra = bytes([134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0])\n\
         s.sendto(ra, ('ff02::1', 0, 0, socket.if_nametoindex('{interface}')))\n"
    );
    let _ = std::process::Command::new("ip")
        .args(["netns", "exec", &router.name, "python3", "-c", &script])
        .stderr(std::process::Stdio::null())
        .status();
}
