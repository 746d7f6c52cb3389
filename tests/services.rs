//! Kubernetes Services: a ClusterIP made the way kube-proxy makes it (a DNAT
//! rule in the node's namespace) is reachable from a pod through the
//! `routes` it was given, with the backend on the same node or another. Root.

mod common;

use common::{Cluster, Netns, Node, Server, pod_address, require_root, tcp_get};
use serde_json::{Value, json};

const SERVICE_CIDR: &str = "fd00:10:96::/112";
const SERVICE_IP: &str = "fd00:10:96::10";

fn conf_with_service_route(node: &Node) -> Value {
    let mut conf = node.conf("1.0.0");
    conf["routes"] = json!([{ "dst": SERVICE_CIDR }]);
    conf
}

/// kube-proxy's DNAT, reduced: service IP:80 -> backend:8080.
fn add_service(node: &Node, backend: &str) {
    let target = format!("[{backend}]:8080");
    node.ns.run(&[
        "ip6tables",
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-d",
        &format!("{SERVICE_IP}/128"),
        "-p",
        "tcp",
        "--dport",
        "80",
        "-j",
        "DNAT",
        "--to-destination",
        &target,
    ]);
}

#[test]
fn service_with_backend_on_the_same_node() {
    require_root();
    let node = Node::standard();
    let conf = conf_with_service_route(&node);
    let (client, backend) = (Netns::new("-cli"), Netns::new("-bk"));
    let client_result = node.add("ctr-client", &client, &conf).assert_ok();
    let client_address = pod_address(&client_result);
    let backend_address = pod_address(&node.add("ctr-backend", &backend, &conf).assert_ok());
    assert_eq!(
        client_result["routes"][1],
        json!({"dst": SERVICE_CIDR, "gw": "fe80::1"})
    );
    assert!(
        client
            .ip(&["-6", "route"])
            .contains(&format!("{SERVICE_CIDR} via fe80::1 dev eth0"))
    );

    let _server = Server::start(&backend, 8080, "hello-from-backend");
    add_service(&node, &backend_address);
    let answer = tcp_get(&client, SERVICE_IP, 80);
    assert_eq!(answer, format!("hello-from-backend {client_address}"));

    // CHECK covers the configured route.
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = client_result.clone();
    let path = client.path();
    assert!(
        node.cni("CHECK", "ctr-client", &path, "eth0", &check_conf)
            .assert_ok()
            .is_null()
    );
    client.ip(&["-6", "route", "del", SERVICE_CIDR]);
    let msg = node
        .cni("CHECK", "ctr-client", &path, "eth0", &check_conf)
        .error(102);
    assert!(msg.contains(SERVICE_CIDR), "{msg}");
}

#[test]
fn service_with_backend_on_another_node() {
    require_root();
    let cluster = Cluster::new();
    let (client, backend) = (Netns::new("-xcli"), Netns::new("-xbk"));
    let client_address = node_add(&cluster.a, "ctr-client", &client);
    let backend_address = node_add(&cluster.b, "ctr-backend", &backend);
    let _server = Server::start(&backend, 8080, "hello-from-node-b");
    add_service(&cluster.a, &backend_address);
    // The backend sees the client's own pod address (no masquerade): what
    // Mycelium needs, since it drops sources outside the sending node's /64.
    let answer = tcp_get(&client, SERVICE_IP, 80);
    assert_eq!(answer, format!("hello-from-node-b {client_address}"));
}

fn node_add(node: &Node, container: &str, pod: &Netns) -> String {
    pod_address(
        &node
            .add(container, pod, &conf_with_service_route(node))
            .assert_ok(),
    )
}

#[test]
fn default_route_option_reaches_beyond_the_overlay() {
    require_root();
    let node = Node::standard();
    node.ns
        .ip(&["-6", "addr", "add", "2001:db8:77::1/128", "dev", "lo"]);
    let pod = Netns::new("-def");
    // defaultRoute as before egress existed: ::/0 via the host, no NAT.
    let mut conf = node.conf("1.0.0");
    conf["egress"] = "overlay".into();
    conf["defaultRoute"] = true.into();
    let result = node.add("ctr-def", &pod, &conf).assert_ok();
    assert_eq!(result["routes"][1], json!({"dst": "::/0", "gw": "fe80::1"}));
    assert!(
        pod.ip(&["-6", "route"])
            .contains("default via fe80::1 dev eth0")
    );
    assert!(
        pod.ping("2001:db8:77::1"),
        "pod -> address outside 400::/7 via the default route"
    );
    let plain = Netns::new("-nodef");
    let mut plain_conf = node.conf("1.0.0");
    plain_conf["egress"] = "overlay".into();
    node.add("ctr-nodef", &plain, &plain_conf).assert_ok();
    assert!(
        !plain.ping("2001:db8:77::1"),
        "without defaultRoute nothing outside 400::/7 is routed"
    );
}
