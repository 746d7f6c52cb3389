//! The real binary, driven like a runtime, against a simulated node. Root.

mod common;

use common::{Netns, Node, TUN, pod_address, require_root};

#[test]
fn add_gives_reachable_pods_then_check_and_del() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.0.0");
    let pod_a = Netns::new("-a");
    let pod_b = Netns::new("-b");

    let result_a = node.add("ctr-a", &pod_a, &conf).assert_ok();
    let result_b = node.add("ctr-b", &pod_b, &conf).assert_ok();
    let address_a = pod_address(&result_a);
    let address_b = pod_address(&result_b);
    assert!(
        address_a.starts_with("5fd:a395:1a8d:501d:ff0f:"),
        "{address_a}"
    );
    assert!(
        address_b.starts_with("5fd:a395:1a8d:501d:ff0f:"),
        "{address_b}"
    );
    assert_ne!(address_a, address_b);

    // The result names the pod interface with index, sandbox and gateway.
    assert_eq!(result_a["interfaces"][1]["name"], "eth0");
    assert_eq!(result_a["interfaces"][1]["sandbox"], pod_a.path());
    assert_eq!(result_a["ips"][0]["interface"], 1);
    assert_eq!(result_a["ips"][0]["gateway"], "fe80::1");
    assert_eq!(result_a["routes"][0]["dst"], "400::/7");

    // Reachable at once: pod -> node, node -> pod, pod -> pod.
    assert!(pod_a.ping(&node.address), "pod a -> node");
    assert!(node.ns.ping(&address_a), "node -> pod a");
    assert!(pod_a.ping(&address_b), "pod a -> pod b");
    assert!(pod_b.ping(&address_a), "pod b -> pod a");

    // The kernel state the design asks for.
    let pod_addr = pod_a.ip(&["-6", "addr", "show", "dev", "eth0"]);
    assert!(
        pod_addr.contains(&format!("{address_a}/128")) && pod_addr.contains("nodad"),
        "{pod_addr}"
    );
    assert!(
        pod_a
            .ip(&["-6", "route"])
            .contains("400::/7 via fe80::1 dev eth0")
    );
    assert!(pod_a.ip(&["link", "show", "eth0"]).contains("mtu 1400"));
    let host_veth = result_a["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let link = node.ns.ip(&["-d", "link", "show", &host_veth]);
    assert!(
        link.contains("alias mycnet/ctr-a/eth0") && link.contains("mtu 1400"),
        "{link}"
    );
    assert!(
        node.ns
            .ip(&["-6", "addr", "show", "dev", &host_veth])
            .contains("fe80::1/64")
    );
    let accept_ra = format!("/proc/sys/net/ipv6/conf/{host_veth}/accept_ra");
    assert_eq!(node.ns.run(&["cat", &accept_ra]).trim(), "0");
    let forwarding = "/proc/sys/net/ipv6/conf/all/forwarding";
    assert_eq!(node.ns.run(&["cat", forwarding]).trim(), "1");

    assert!(
        node.check("ctr-a", &pod_a, &result_a, "1.0.0")
            .assert_ok()
            .is_null()
    );
    assert!(
        node.check("ctr-b", &pod_b, &result_b, "1.0.0")
            .assert_ok()
            .is_null()
    );

    node.del("ctr-a", &pod_a.path(), &conf).assert_ok();
    assert!(!node.host_veths().contains(&host_veth));
    assert!(!node.ns.ip(&["-6", "route"]).contains(&address_a));
    assert!(!pod_a.ip(&["link"]).contains("eth0"));
    node.del("ctr-a", &pod_a.path(), &conf).assert_ok();
    assert!(pod_b.ping(&node.address), "pod b unaffected by DEL of a");
    node.del("ctr-b", &pod_b.path(), &conf).assert_ok();
    assert!(node.host_veths().is_empty());
}

#[test]
fn del_after_netns_is_gone_and_with_empty_netns() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.0.0");
    let pod = Netns::new("-gone");
    let path = pod.path();
    node.add("ctr-gone", &pod, &conf).assert_ok();
    let pod2 = Netns::new("-empty");
    node.add("ctr-empty", &pod2, &conf).assert_ok();
    drop(pod);
    node.del("ctr-gone", &path, &conf).assert_ok();
    node.del("ctr-empty", "", &conf).assert_ok();
    node.del("ctr-empty", "", &conf).assert_ok();
    node.del("ctr-never-added", "", &conf).assert_ok();
    assert!(node.host_veths().is_empty());
    assert!(!node.ns.ip(&["-6", "route"]).contains(":ff0f:"));
}

#[test]
fn add_with_interface_present_fails_and_changes_nothing() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.0.0");
    let pod = Netns::new("-busy");
    pod.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ]);
    let (node_before, pod_before) = (node.ns.state(), pod.state());
    let msg = node.add("ctr-busy", &pod, &conf).error(100);
    assert!(msg.contains("interface eth0 already exists"), "{msg}");
    assert_eq!(node.ns.state(), node_before);
    assert_eq!(pod.state(), pod_before);
}

#[test]
fn add_twice_for_the_same_container_fails_the_second_time() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.0.0");
    let pod = Netns::new("-twice");
    let first = node.add("ctr-twice", &pod, &conf).assert_ok();
    let node_before = node.ns.state();
    node.add("ctr-twice", &pod, &conf).error(100);
    assert_eq!(node.ns.state(), node_before);
    assert!(pod.ping(&node.address));
    assert!(
        node.check("ctr-twice", &pod, &first, "1.0.0")
            .assert_ok()
            .is_null()
    );
}

/// Each broken Mycelium interface gives a clear code-11 error and leaves
/// both namespaces exactly as they were.
#[test]
fn add_fails_cleanly_when_mycelium_is_not_ready() {
    require_root();
    let cases: [(&[&str], &str); 4] = [
        (&["link", "del", TUN], "failed to find interface mctun0"),
        (&["link", "set", TUN, "down"], "interface mctun0 is down"),
        (
            &["-6", "addr", "flush", "dev", TUN],
            "no global IPv6 address in 400::/7 on mctun0",
        ),
        (
            &["-6", "route", "del", "400::/7", "dev", TUN],
            "400::/7 does not route via mctun0",
        ),
    ];
    for (breakage, expected) in cases {
        let case = breakage.join(" ");
        let node = Node::standard();
        node.ns.ip(breakage);
        let pod = Netns::new("-nr");
        let (node_before, pod_before) = (node.ns.state(), pod.state());
        let msg = node.add("ctr-nr", &pod, &node.conf("1.0.0")).error(11);
        assert_eq!(msg, expected, "{case}");
        assert_eq!(node.ns.state(), node_before, "{case}");
        assert_eq!(pod.state(), pod_before, "{case}");
        let mut status_conf = node.conf("1.1.0");
        status_conf["name"] = "status".into();
        let status = node.run(&[("CNI_COMMAND", "STATUS")], &status_conf.to_string());
        assert_eq!(status.error(50), expected, "{case}");
    }
}

#[test]
fn check_reports_what_is_missing() {
    require_root();
    let node = Node::standard();
    let pod = Netns::new("-chk");
    let result = node.add("ctr-chk", &pod, &node.conf("1.0.0")).assert_ok();
    let address = pod_address(&result);

    pod.ip(&["-6", "route", "del", "400::/7"]);
    let msg = node.check("ctr-chk", &pod, &result, "1.0.0").error(102);
    assert!(msg.contains("no route 400::/7 via fe80::1"), "{msg}");

    node.ns
        .ip(&["-6", "route", "del", &format!("{address}/128")]);
    let msg = node.check("ctr-chk", &pod, &result, "1.0.0").error(102);
    assert!(msg.contains(&format!("no route {address}/128")), "{msg}");

    node.ns.ip(&["link", "set", TUN, "down"]);
    node.check("ctr-chk", &pod, &result, "1.0.0").error(11);
}

#[test]
fn check_fails_when_the_node_no_longer_owns_the_64() {
    require_root();
    let node = Node::standard();
    let pod = Netns::new("-own");
    let result = node.add("ctr-own", &pod, &node.conf("1.0.0")).assert_ok();
    node.ns.ip(&["-6", "addr", "flush", "dev", TUN]);
    node.ns.ip(&["-6", "addr", "add", "4aa:1::1/7", "dev", TUN]);
    let msg = node.check("ctr-own", &pod, &result, "1.0.0").error(102);
    assert!(msg.contains("is not in the /64 of mctun0"), "{msg}");
}

#[test]
fn status_passes_on_a_ready_node() {
    require_root();
    let node = Node::standard();
    let status = node.run(
        &[("CNI_COMMAND", "STATUS")],
        &node.conf("1.1.0").to_string(),
    );
    assert_eq!(
        (status.code, status.stdout.as_str()),
        (0, ""),
        "{}",
        status.stderr
    );
}

#[test]
fn gc_removes_only_stale_attachments_of_its_network() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.1.0");
    let mut other = node.conf("1.1.0");
    other["name"] = "othernet".into();
    let pods: Vec<Netns> = (0..3).map(|_| Netns::new("-gc")).collect();
    node.add("keep", &pods[0], &conf).assert_ok();
    node.add("stale", &pods[1], &conf).assert_ok();
    let foreign = node.add("stale", &pods[2], &other).assert_ok();
    assert_eq!(node.host_veths().len(), 3);

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] =
        serde_json::json!([{"containerID": "keep", "ifname": "eth0"}]);
    let outcome = node.run(&[("CNI_COMMAND", "GC")], &gc.to_string());
    assert_eq!(outcome.code, 0, "{} {}", outcome.stdout, outcome.stderr);
    let left = node.host_veths();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.contains(
            &foreign["interfaces"][0]["name"]
                .as_str()
                .unwrap()
                .to_string()
        )
    );
    assert!(pods[0].ping(&node.address));
    assert!(!pods[1].ip(&["link"]).contains("eth0"));

    // Older runtimes send cni.dev/attachments.
    let mut gc = other.clone();
    gc["cni.dev/attachments"] = serde_json::json!([]);
    assert_eq!(node.run(&[("CNI_COMMAND", "GC")], &gc.to_string()).code, 0);
    assert_eq!(node.host_veths().len(), 1);
}

#[test]
fn refuses_the_hosts_own_namespace_and_non_namespaces() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.0.0");
    let node_before = node.ns.state();
    let own = node
        .cni("ADD", "ctr-x", &node.ns.path(), "eth0", &conf)
        .error(4);
    assert!(own.contains("host's own network namespace"), "{own}");
    let file = node
        .cni("ADD", "ctr-x", "/etc/hostname", "eth0", &conf)
        .error(4);
    assert!(file.contains("not a network namespace"), "{file}");
    let missing = node
        .cni(
            "ADD",
            "ctr-x",
            "/var/run/netns/does-not-exist-mcni",
            "eth0",
            &conf,
        )
        .error(4);
    assert!(missing.contains("No such file"), "{missing}");
    assert_eq!(node.ns.state(), node_before);
}

#[test]
fn configured_mtu_wins_and_results_follow_the_version() {
    require_root();
    let node = Node::standard();
    let mut conf = node.conf("1.1.0");
    conf["mtu"] = 1300.into();
    let pod = Netns::new("-mtu");
    let result = node.add("ctr-mtu", &pod, &conf).assert_ok();
    assert_eq!(result["cniVersion"], "1.1.0");
    assert_eq!(result["interfaces"][1]["mtu"], 1300);
    assert!(pod.ip(&["link", "show", "eth0"]).contains("mtu 1300"));
    let pod_old = Netns::new("-v031");
    let result = node
        .add("ctr-031", &pod_old, &node.conf("0.3.1"))
        .assert_ok();
    assert_eq!(result["ips"][0]["version"], "6");
}

#[test]
fn version_about_and_bad_env() {
    require_root();
    let node = Node::standard();
    let version = node.run(&[("CNI_COMMAND", "VERSION")], "").assert_ok();
    assert_eq!(
        version["supportedVersions"],
        serde_json::json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
    let about = node.run(&[], "");
    assert_eq!((about.code, about.stdout.as_str()), (0, ""));
    assert!(
        about.stderr.starts_with("mycelium-cni "),
        "{}",
        about.stderr
    );
    let missing = node
        .run(&[("CNI_COMMAND", "ADD")], &node.conf("1.0.0").to_string())
        .error(4);
    assert!(
        missing.contains("CNI_CONTAINERID, CNI_IFNAME, CNI_NETNS"),
        "{missing}"
    );
}
