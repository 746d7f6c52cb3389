//! Chaining with Debian's reference plugins, as a runtime runs a conflist. Root.

mod common;

use common::{Chain, Netns, Node, TUN, pod_address, require_root};
use serde_json::json;

#[test]
fn meta_plugins_accept_our_result() {
    require_root();
    let node = Node::standard();
    let pod = Netns::new("-meta");
    for version in ["0.4.0", "1.0.0"] {
        let chain = Chain {
            node: &node,
            version,
            name: "mycnet",
            plugins: vec![
                json!({"type": "loopback"}),
                json!({"type": "mycelium-cni", "myceliumInterface": TUN}),
                json!({"type": "tuning", "sysctl": {"net.ipv6.conf.eth0.hop_limit": "60"}}),
                json!({"type": "portmap", "capabilities": {"portMappings": true},
                       "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}}),
                json!({"type": "bandwidth", "egressRate": 100_000_000, "egressBurst": 1_000_000}),
            ],
            container: "ctr-meta",
            netns: pod.path(),
            ifname: "eth0",
        };
        let result = chain.add();
        // loopback's lo first, then our host and pod interfaces.
        assert_eq!(result["interfaces"][0]["name"], "lo", "{result}");
        assert_eq!(result["interfaces"][2]["name"], "eth0");
        let address = pod_address(&result);
        assert!(pod.ping(&node.address), "{version}: pod -> node");
        assert!(node.ns.ping(&address), "{version}: node -> pod");
        let hop_limit = pod.run(&["cat", "/proc/sys/net/ipv6/conf/eth0/hop_limit"]);
        assert_eq!(hop_limit.trim(), "60");
        let rules = node.ns.run(&["ip6tables-save"]);
        assert!(rules.contains("18080"), "portmap made no rule: {rules}");
        let host_veth = result["interfaces"][1]["name"].as_str().unwrap();
        assert!(node.ns.ip(&["link", "show", host_veth]).contains("myc"));
        // portmap's own CHECK insists on an IPv4 chain, so it cannot pass
        // for an IPv6-only container; the others are checked.
        chain.check(
            &result,
            &["loopback", "mycelium-cni", "tuning", "bandwidth"],
        );
        chain.del(&result);
        assert!(node.host_veths().is_empty(), "{version}");
        let rules = node.ns.run(&["ip6tables-save"]);
        assert!(!rules.contains("18080"), "portmap rule left: {rules}");
    }
}

#[test]
fn secondary_interface_next_to_ptp_ipv4() {
    require_root();
    let node = Node::standard();
    let pod = Netns::new("-sec");
    let chain = Chain {
        node: &node,
        version: "1.0.0",
        name: "dual",
        plugins: vec![
            json!({"type": "loopback"}),
            json!({"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.241.7.0/24",
                   "dataDir": format!("/run/mcni-test-{}", std::process::id())}}),
            json!({"type": "mycelium-cni", "myceliumInterface": TUN, "podInterface": "myc0"}),
        ],
        container: "ctr-dual",
        netns: pod.path(),
        ifname: "eth0",
    };
    let result = chain.add();
    let names: Vec<_> = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert!(
        names.contains(&json!("eth0")) && names.contains(&json!("myc0")),
        "{result}"
    );
    assert!(
        pod.ip(&["-4", "addr", "show", "dev", "eth0"])
            .contains("10.241.7.")
    );
    assert!(
        pod.ip(&["-6", "route"])
            .contains("400::/7 via fe80::1 dev myc0")
    );
    assert!(pod.ping(&node.address));
    // ptp's CHECK validates every IP of the result on its own eth0, so it
    // fails whenever another interface adds one: only ours is checked.
    chain.check(&result, &["mycelium-cni"]);
    chain.del(&result);
    assert!(node.host_veths().is_empty());
    assert!(!pod.ip(&["link"]).contains("myc0"));
    let _ = std::fs::remove_dir_all(format!("/run/mcni-test-{}", std::process::id()));
}
