//! The path k3s and Kubernetes take: kubelet's CRI calls, through
//! containerd's CRI plugin (Debian's containerd, run by the test in a
//! simulated node), down to our plugin. A small Python gRPC client
//! (tests/cri/cri_client.py, with the published CRI api.proto) stands in for
//! kubelet; the images are built offline (tests/cri/oci_image.py). Each
//! numbered step is one of the checks the README lists.
//! Root; needs containerd, runc, busybox-static, curl, nft and a Python with
//! grpcio (scripts/test.sh installs them).

mod common;
#[path = "cri/fixture.rs"]
mod fixture;

use common::{NET_V4, NODE_V4, Server, TUN, Uplink, binary, require_root, source_filter_drops};
use fixture::{Containerd, PAGE, Pod, WEB_PORT};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = "5fd:a395:1a8d:501d:f650:6887:2bd4:ee49";
const PREFIX: &str = "5fd:a395:1a8d:501d:";
const SERVICE_CIDR: &str = "fd00:10:96::/112";
const HOST_PORT: u16 = 18080;

#[test]
fn kubelet_calls_through_containerd_cri() {
    require_root();
    let started = Instant::now();
    let mut cri = Containerd::start(NODE);
    node_readiness(&cri);
    let baseline = cri.node.ns.state();
    let mut p1 = pod_up(&cri);
    let mut p2 = traffic(&cri, &mut p1);
    egress(&cri, &p1);
    teardown(&cri, &p1);
    restart(&mut cri, &mut p2);
    concurrency(&cri);
    failure(&cri);
    ports(&cri);
    ingress_bandwidth(&cri);
    egress_bandwidth(&cri);
    no_leftovers(&cri, &baseline);
    eprintln!("CRI test took {:.1} s", started.elapsed().as_secs_f64());
}

fn wait_until(what: &str, seconds: u64, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(seconds),
            "{what}: not within {seconds} s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

/// 1. NetworkReady follows the conflist that `install --wait`, run as the
///    DaemonSet's init container runs it, writes once Mycelium has its address.
fn node_readiness(cri: &Containerd) {
    const CHECK: &str = "1 node readiness";
    assert!(
        !cri.network_ready(),
        "{CHECK}: NetworkReady before any conflist"
    );
    let (bin_dir, conf_dir) = (cri.bin_dir(), cri.conf_dir());
    let mut install = Command::new("nsenter")
        .arg(format!("--net={}", cri.node.ns.path()))
        .arg(binary())
        .arg("install")
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--conf-dir")
        .arg(&conf_dir)
        .args(["--interface", TUN, "--service-cidr", SERVICE_CIDR, "--wait"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn install");
    std::thread::sleep(Duration::from_millis(2500));
    let conflist = conf_dir.join("10-mycelium.conflist");
    assert!(
        install.try_wait().expect("install status").is_none(),
        "{CHECK}: install --wait returned while the TUN had no overlay address"
    );
    assert!(!conflist.exists(), "{CHECK}: conflist written too early");
    assert!(!cri.network_ready(), "{CHECK}: NetworkReady while waiting");

    cri.node
        .ns
        .ip(&["-6", "addr", "add", &format!("{NODE}/7"), "dev", TUN]);
    let output = install.wait_with_output().expect("install output");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{CHECK}: install failed: {said}");
    assert!(
        said.contains("waiting for the Mycelium interface"),
        "{CHECK}: install did not say it waited: {said}"
    );
    assert!(conflist.exists(), "{CHECK}: no conflist after install");
    let took = wait_until(CHECK, 10, || cri.network_ready());
    eprintln!(
        "{CHECK}: NetworkReady {} ms after install",
        took.as_millis()
    );

    // The conflist as install wrote it, unedited: portmap (hostPort) and
    // bandwidth chained after us, as k3s's own flannel conflist does,
    // because the bin dir has them (as k3s's has).
    let report = String::from_utf8_lossy(&output.stdout);
    let list: Value =
        serde_json::from_str(&std::fs::read_to_string(&conflist).expect("read conflist"))
            .expect("conflist JSON");
    let chain: Vec<&str> = list["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .map(|p| p["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        chain,
        ["loopback", "mycelium-cni", "portmap", "bandwidth"],
        "{CHECK}: the chain install wrote; its report: {report}"
    );
    assert!(
        report.contains("chained portmap") && report.contains("chained bandwidth"),
        "{CHECK}: install's report: {report}"
    );
    cri.wrap_plugin();
    wait_until("containerd loads the conflist with portmap", 10, || {
        let status = cri.call("Status", json!({"verbose": true}));
        status["info"]["cniconfig"]
            .as_str()
            .is_some_and(|c| c.contains("portmap") && c.contains("bandwidth"))
    });
}

/// 2. RunPodSandbox: one ADD with kubelet's args; the pod IP kubelet
///    would publish is in the node's /64.
fn pod_up(cri: &Containerd) -> Pod {
    const CHECK: &str = "2 pod up";
    let pod = cri
        .run_pod("p1", &[])
        .unwrap_or_else(|e| panic!("{CHECK}: RunPodSandbox: {e}"));
    let adds = cri.calls_for(&pod.id, "ADD");
    assert_eq!(adds.len(), 1, "{CHECK}: ADDs {adds:?}");
    assert_eq!(adds[0].status, "0", "{CHECK}: ADD failed");
    assert!(
        adds[0].netns.starts_with("/var/run/netns/cni-"),
        "{CHECK}: netns {}",
        adds[0].netns
    );
    let expected = [
        "IgnoreUnknown=1".to_string(),
        "K8S_POD_NAMESPACE=default".into(),
        "K8S_POD_NAME=p1".into(),
        format!("K8S_POD_INFRA_CONTAINER_ID={}", pod.id),
        "K8S_POD_UID=uid-p1".into(),
    ];
    for arg in &expected {
        assert!(
            adds[0].args.split(';').any(|a| a == arg),
            "{CHECK}: {arg} missing from CNI_ARGS {}",
            adds[0].args
        );
    }
    assert!(
        pod.ip.starts_with(PREFIX) && pod.ip != NODE,
        "{CHECK}: PodSandboxStatus IP {:?}",
        pod.ip
    );
    pod
}

/// 3. A container in the sandbox reaches the node and a second pod, the
///    node reaches it, and it cannot send as its neighbour.
fn traffic(cri: &Containerd, p1: &mut Pod) -> Pod {
    const CHECK: &str = "3 traffic";
    let mut p2 = cri
        .run_pod("p2", &[])
        .unwrap_or_else(|e| panic!("{CHECK}: RunPodSandbox p2: {e}"));
    cri.start_container(p1);
    cri.start_container(&mut p2);
    let ping = |pod: &Pod, to: &str| cri.exec(pod, &["ping", "-c", "1", "-W", "2", to]);
    assert_eq!(ping(p1, NODE).0, 0, "{CHECK}: pod -> node");
    assert_eq!(ping(p1, &p2.ip).0, 0, "{CHECK}: pod -> second pod");
    let (code, page) = cri.http_get(p1, &p2.ip, WEB_PORT);
    assert!(
        code == 0 && page.contains(PAGE),
        "{CHECK}: TCP to second pod: {code} {page}; its log: {}",
        cri.container_log(&p2)
    );
    assert!(cri.node.ns.ping(&p1.ip), "{CHECK}: node -> pod");

    let dropped = source_filter_drops(&cri.node).1;
    let forged = format!("{}/128", p2.ip);
    // (busybox ip has no nodad: wait out duplicate address detection.)
    let add = format!("ip -6 addr add {forged} dev eth0 && sleep 2");
    let (code, said) = cri.exec(p1, &["sh", "-c", &add]);
    assert_eq!(code, 0, "{CHECK}: forge address: {said}");
    let spoof = cri.exec(p1, &["ping", "-c", "1", "-W", "1", "-I", &p2.ip, NODE]);
    assert_ne!(
        spoof.0, 0,
        "{CHECK}: a ping sent as the neighbour got a reply"
    );
    assert!(
        source_filter_drops(&cri.node).1 > dropped,
        "{CHECK}: the source filter did not count the forged packet"
    );
    let del = ["ip", "-6", "addr", "del", &forged, "dev", "eth0"];
    assert_eq!(cri.exec(p1, &del).0, 0, "{CHECK}: remove forged address");
    assert_eq!(ping(p1, &p2.ip).0, 0, "{CHECK}: pod -> second pod after");
    p2
}

/// 3b. Egress (on by default, `nat`): the container reaches an IPv4-only
///     server behind the node, which sees the node's address, and has a
///     node-local IPv4 address, while the IP kubelet would publish
///     (PodSandboxStatus) stays the overlay address.
fn egress(cri: &Containerd, p1: &Pod) {
    const CHECK: &str = "3b egress";
    let uplink = Uplink::new(&cri.node);
    let _server = Server::start(&uplink.net, 8081, "outside");
    let get = format!("nc -w 3 {NET_V4} 8081 </dev/null");
    let (code, reply) = cri.exec(p1, &["sh", "-c", &get]);
    assert_eq!(
        (code, reply.as_str()),
        (0, format!("outside ::ffff:{NODE_V4}").as_str()),
        "{CHECK}: the container -> an IPv4-only server, as the node"
    );
    let (_, addresses) = cri.exec(p1, &["ip", "-4", "addr", "show", "dev", "eth0"]);
    assert!(
        addresses.contains("inet 198.18."),
        "{CHECK}: the container's IPv4 address: {addresses}"
    );
    let published = cri.pod_ip(&p1.id);
    assert!(
        published.starts_with(PREFIX),
        "{CHECK}: PodSandboxStatus IP {published:?} is not the overlay address"
    );
    // The uplink goes with its namespace: the node is as at the baseline.
    drop(uplink);
}

fn lists(list: &str, item: &str) -> bool {
    list.split(',')
        .any(|entry| entry == item || entry.split('@').next() == Some(item))
}

/// 4. The host veth and route are gone when StopPodSandbox's DEL returns;
///    the DELs of a repeated Stop and of Remove (empty CNI_NETNS) succeed.
fn teardown(cri: &Containerd, pod: &Pod) {
    const CHECK: &str = "4 teardown";
    let veth = cri.host_veth_of(&pod.ip);
    assert!(veth.starts_with("myc"), "{CHECK}: host veth {veth:?}");
    cri.stop(&pod.id)
        .unwrap_or_else(|e| panic!("{CHECK}: StopPodSandbox: {e}"));
    let dels = cri.calls_for(&pod.id, "DEL");
    assert_eq!(dels.len(), 1, "{CHECK}: DELs after Stop: {dels:?}");
    let del = &dels[0];
    assert_eq!(del.status, "0", "{CHECK}: DEL failed");
    assert!(del.netns.starts_with("/var/run/netns/"), "{CHECK}: {del:?}");
    assert!(
        !lists(&del.links, &veth),
        "{CHECK}: {veth} still there when DEL returned"
    );
    assert!(
        !lists(&del.routes, &pod.ip),
        "{CHECK}: route to {} still there when DEL returned",
        pod.ip
    );

    cri.stop(&pod.id)
        .unwrap_or_else(|e| panic!("{CHECK}: second StopPodSandbox: {e}"));
    cri.remove(&pod.id)
        .unwrap_or_else(|e| panic!("{CHECK}: RemovePodSandbox: {e}"));
    let dels = cri.calls_for(&pod.id, "DEL");
    assert!(dels.len() >= 2, "{CHECK}: no DEL after the first: {dels:?}");
    for again in &dels[1..] {
        assert_eq!(again.status, "0", "{CHECK}: repeated DEL failed: {again:?}");
        assert!(again.netns.is_empty(), "{CHECK}: {again:?}");
    }
    let left = cri.sandboxes();
    assert!(
        left.iter().all(|s| s["id"] != pod.id.as_str()),
        "{CHECK}: sandbox still listed"
    );
}

/// 5. containerd restarts while a pod runs: no CNI calls, the pod stays
///    reachable with the same IP, and Stop/Remove afterwards clean up.
fn restart(cri: &mut Containerd, pod: &mut Pod) {
    const CHECK: &str = "5 restart";
    let calls = cri.calls().len();
    cri.stop_daemon();
    assert!(
        cri.node.ns.ping(&pod.ip),
        "{CHECK}: pod while containerd is down"
    );
    cri.start_daemon();
    assert_eq!(cri.calls().len(), calls, "{CHECK}: the restart called CNI");
    assert_eq!(
        cri.pod_ip(&pod.id),
        pod.ip,
        "{CHECK}: status IP after restart"
    );
    assert!(
        cri.node.ns.ping(&pod.ip),
        "{CHECK}: node -> pod after restart"
    );
    assert_eq!(
        cri.exec(pod, &["ping", "-c", "1", "-W", "2", NODE]).0,
        0,
        "{CHECK}: pod -> node after restart"
    );
    let veth = cri.host_veth_of(&pod.ip);
    cri.stop(&pod.id)
        .unwrap_or_else(|e| panic!("{CHECK}: StopPodSandbox: {e}"));
    cri.remove(&pod.id)
        .unwrap_or_else(|e| panic!("{CHECK}: RemovePodSandbox: {e}"));
    assert!(
        !cri.node.host_veths().contains(&veth),
        "{CHECK}: {veth} left"
    );
    assert!(cri.host_veth_of(&pod.ip).is_empty(), "{CHECK}: route left");
}

/// 6. Eight sandboxes at once: distinct addresses, all torn down.
fn concurrency(cri: &Containerd) {
    const CHECK: &str = "6 concurrency";
    let pods: Vec<Pod> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..8)
            .map(|i| scope.spawn(move || cri.run_pod(&format!("c{i}"), &[])))
            .collect();
        runs.into_iter()
            .map(|run| {
                run.join()
                    .expect("thread")
                    .unwrap_or_else(|e| panic!("{CHECK}: {e}"))
            })
            .collect()
    });
    let mut ips: Vec<&str> = pods.iter().map(|p| p.ip.as_str()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 8, "{CHECK}: addresses not distinct: {ips:?}");
    for pod in &pods {
        assert!(pod.ip.starts_with(PREFIX), "{CHECK}: {}", pod.ip);
        assert!(cri.node.ns.ping(&pod.ip), "{CHECK}: node -> {}", pod.name);
    }
    assert_eq!(cri.node.host_veths().len(), 8, "{CHECK}: host veths");
    std::thread::scope(|scope| {
        for pod in &pods {
            scope.spawn(move || {
                cri.stop(&pod.id)
                    .and_then(|_| cri.remove(&pod.id))
                    .unwrap_or_else(|e| panic!("{CHECK}: teardown {}: {e}", pod.name));
            });
        }
    });
    assert!(cri.node.host_veths().is_empty(), "{CHECK}: veths left");
    let failed: Vec<_> = cri
        .calls()
        .into_iter()
        .filter(|c| c.status != "0")
        .collect();
    assert!(failed.is_empty(), "{CHECK}: failed CNI calls {failed:?}");
}

/// 7. With the TUN down, RunPodSandbox fails with our message and leaves
///    no netns, veth or route.
fn failure(cri: &Containerd) {
    const CHECK: &str = "7 failure";
    let before = cri.node.ns.state();
    cri.node.ns.ip(&["link", "set", TUN, "down"]);
    let error = match cri.run_pod("broken", &[]) {
        Ok(pod) => panic!("{CHECK}: RunPodSandbox succeeded with {}", pod.ip),
        Err(error) => error,
    };
    assert!(
        error.contains(&format!("interface {TUN} is down")),
        "{CHECK}: CRI error without the plugin's message: {error}"
    );
    assert!(cri.pod_netns_files().is_empty(), "{CHECK}: netns left");
    assert!(cri.node.host_veths().is_empty(), "{CHECK}: veth left");
    assert!(
        cri.sandboxes()
            .iter()
            .all(|s| s["metadata"]["name"] != "broken"),
        "{CHECK}: failed sandbox still listed"
    );
    cri.node.ns.ip(&["link", "set", TUN, "up"]);
    // IPv6 drops the address of a link set down.
    let addresses = cri.node.ns.ip(&["-6", "addr", "show", "dev", TUN]);
    if !addresses.contains(NODE) {
        let address = format!("{NODE}/7");
        cri.node.ns.ip(&["-6", "addr", "add", &address, "dev", TUN]);
    }
    assert_eq!(cri.node.ns.state(), before, "{CHECK}: node state changed");
}

/// 8. A port mapping (portmap, chained after us by install) reaches the pod
///    at the node's address over IPv6, from the node and from another pod.
fn ports(cri: &Containerd) {
    const CHECK: &str = "8 ports";
    let mut web = cri
        .run_pod("web", &[(HOST_PORT, WEB_PORT)])
        .unwrap_or_else(|e| panic!("{CHECK}: {e}"));
    let mut client = cri
        .run_pod("client", &[])
        .unwrap_or_else(|e| panic!("{CHECK}: {e}"));
    cri.start_container(&mut web);
    cri.start_container(&mut client);
    let url = format!("http://[{NODE}]:{HOST_PORT}/");
    let from_node = cri.node.ns.run(&["curl", "-6", "-s", "-m", "5", &url]);
    assert!(
        from_node.contains(PAGE),
        "{CHECK}: from the node: {from_node:?}"
    );
    let (code, page) = cri.http_get(&client, NODE, HOST_PORT);
    assert!(
        code == 0 && page.contains(PAGE),
        "{CHECK}: from a pod: {page}"
    );
    for pod in [&web, &client] {
        cri.stop(&pod.id)
            .and_then(|_| cri.remove(&pod.id))
            .unwrap_or_else(|e| panic!("{CHECK}: teardown: {e}"));
    }
}

/// 11. The node's links, addresses and routes are as before the first pod,
///     and containerd holds no pod netns.
fn no_leftovers(cri: &Containerd, baseline: &str) {
    const CHECK: &str = "11 no leftovers";
    // The first ADD turns on IPv6 forwarding for good, and with it the
    // kernel adds the subnet-router anycast route of the TUN's prefix.
    let state = cri.node.ns.state();
    let state: Vec<&str> = state
        .lines()
        .filter(|l| !l.starts_with("anycast "))
        .collect();
    assert_eq!(
        state,
        baseline.lines().collect::<Vec<_>>(),
        "{CHECK}: node state"
    );
    assert!(cri.sandboxes().is_empty(), "{CHECK}: sandboxes listed");
    let netns = cri.pod_netns_files();
    assert!(netns.is_empty(), "{CHECK}: netns left: {netns:?}");
}

const TRANSFER_PORT: u16 = 18090;
/// 2.4 s at 1 Mbit/s.
const TRANSFER_BYTES: usize = 300_000;
/// The window at the end of a transfer over which its rate is measured.
const TAIL_SECONDS: f64 = 2.0;

/// Sends `size` bytes from the node into the pod (whose busybox `nc` reads
/// and counts them) and follows the bytes the pod acknowledged (TCP_INFO's
/// tcpi_bytes_acked) every 10 ms. Returns (bytes the pod counted, Mbit/s
/// over the last TAIL_SECONDS of the transfer, or all of it if shorter).
fn transfer_into(cri: &Containerd, pod: &Pod, size: usize) -> (usize, f64) {
    let script = format!(
        "import socket, struct, threading, time\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('::', {TRANSFER_PORT}))\n\
         s.listen(1)\n\
         print('ready', flush=True)\n\
         c, _ = s.accept()\n\
         samples = [(time.monotonic(), 0)]\n\
         threading.Thread(target=c.sendall, args=(b'x' * {size},)).start()\n\
         while samples[-1][1] < {size}:\n\
         \x20   info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 128)\n\
         \x20   samples.append((time.monotonic(), struct.unpack_from('Q', info, 120)[0]))\n\
         \x20   time.sleep(0.01)\n\
         end, total = samples[-1]\n\
         start, sent = next(x for x in samples if x[0] >= end - {TAIL_SECONDS})\n\
         print((total - sent) * 8 / (end - start) / 1e6, flush=True)\n\
         c.shutdown(socket.SHUT_WR)\n\
         while c.recv(65536):\n\
         \x20   pass\n"
    );
    let receive = format!("nc {NODE} {TRANSFER_PORT} </dev/null | wc -c");
    let ((code, counted), rate) = with_node_peer(cri, &script, pod, &receive);
    assert_eq!(code, 0, "receive in {}: {counted}", pod.name);
    let rate = rate.trim().parse().unwrap_or(f64::NAN);
    (counted.trim().parse().unwrap_or(0), rate)
}

/// Runs the Python `script` in the node (it prints "ready" once it listens,
/// then one result line), and `command` in the pod's container against it:
/// the container's (exit code, output) and the script's result line.
fn with_node_peer(
    cri: &Containerd,
    script: &str,
    pod: &Pod,
    command: &str,
) -> ((i64, String), String) {
    use std::io::BufRead;
    let node = &cri.node.ns.name;
    let mut peer = Command::new("ip")
        .args([
            "netns", "exec", node, "timeout", "30", "python3", "-c", script,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the node's peer");
    let mut lines = std::io::BufReader::new(peer.stdout.take().expect("stdout")).lines();
    let ready = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(ready, "ready", "the node's peer did not start");
    let ran = cri.exec(pod, &["sh", "-c", command]);
    let result = lines.next().and_then(Result::ok).unwrap_or_default();
    let _ = peer.kill();
    let _ = peer.wait();
    (ran, result)
}

/// The token bucket's size in bytes, from `tc qdisc show` ("burst 21474835b").
fn tbf_burst(qdisc: &str) -> usize {
    let mut words = qdisc.split_whitespace();
    words.find(|w| *w == "burst");
    let burst = words.next().unwrap_or("");
    let burst = burst.trim_end_matches('b').parse();
    burst.unwrap_or_else(|_| panic!("no burst in {qdisc}"))
}

/// 9. `kubernetes.io/ingress-bandwidth: 1M` (bandwidth, chained by
///    install): a 1 Mbit/s token bucket on the pod's host veth, and a
///    transfer into the pod runs at no more than about 1.2 Mbit/s, while
///    one into a pod without the annotation runs far faster. containerd
///    passes the largest burst the plugin takes (about 2^32 bits), which
///    gives a bucket of about 20 MiB that passes at full speed: the rate is
///    measured at the end of a transfer that goes beyond it.
fn ingress_bandwidth(cri: &Containerd) {
    const CHECK: &str = "9 ingress bandwidth";
    let annotation = [("kubernetes.io/ingress-bandwidth", "1M")];
    let mut slow = cri
        .run_pod_with("slow", &[], &annotation)
        .unwrap_or_else(|e| panic!("{CHECK}: {e}"));
    let mut fast = cri
        .run_pod("fast", &[])
        .unwrap_or_else(|e| panic!("{CHECK}: {e}"));
    cri.start_container(&mut slow);
    cri.start_container(&mut fast);
    let veth = cri.host_veth_of(&slow.ip);
    let qdisc = cri.node.ns.run(&["tc", "qdisc", "show", "dev", &veth]);
    assert!(
        qdisc.contains("qdisc tbf") && qdisc.contains("rate 1Mbit"),
        "{CHECK}: no 1 Mbit/s limit on {veth}: {qdisc}"
    );
    // The bucket is full at first: send most of it (headers count too),
    // then TRANSFER_BYTES past it, and measure the tail.
    let size = tbf_burst(&qdisc) / 100 * 95 + TRANSFER_BYTES;
    let (bytes, limited) = transfer_into(cri, &slow, size);
    assert_eq!(bytes, size, "{CHECK}: bytes into the limited pod");
    let (bytes, free) = transfer_into(cri, &fast, TRANSFER_BYTES);
    assert_eq!(bytes, TRANSFER_BYTES, "{CHECK}: bytes into the other pod");
    eprintln!(
        "{CHECK}: {qdisc}{CHECK}: {limited:.3} Mbit/s over the last {TAIL_SECONDS} s of {size} bytes; {free:.0} Mbit/s into a pod without the annotation"
    );
    assert!(
        limited <= 1.2,
        "{CHECK}: {limited:.3} Mbit/s into a pod limited to 1 Mbit/s"
    );
    assert!(
        free > 5.0,
        "{CHECK}: the pod without the annotation got only {free:.3} Mbit/s"
    );
    for pod in [&slow, &fast] {
        cri.stop(&pod.id)
            .and_then(|_| cri.remove(&pod.id))
            .unwrap_or_else(|e| panic!("{CHECK}: teardown: {e}"));
    }
}

/// Whether this kernel can redirect a link's ingress to an ifb device (tc
/// ingress qdisc, u32 classifier, mirred action): what the bandwidth plugin
/// needs to shape a pod's egress. Tried on links of a namespace of its own.
fn kernel_redirects_to_ifb() -> bool {
    let ns = common::Netns::new("-tc");
    ns.ip(&["link", "add", "v1", "type", "veth", "peer", "name", "v2"]);
    if !ns.exec(&["ip", "link", "add", "i1", "type", "ifb"]) {
        return false;
    }
    let tc = |args: &[&str]| ns.exec(&[&["tc"][..], args].concat());
    tc(&["qdisc", "add", "dev", "v1", "ingress"])
        && tc(&[
            "filter", "add", "dev", "v1", "parent", "ffff:", "protocol", "all", "u32", "match",
            "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "i1",
        ])
}

/// Sends `size` bytes from the pod (busybox `dd | nc`) to the node, which
/// times each arrival. Returns (bytes the node received, Mbit/s over the
/// last TAIL_SECONDS of the transfer).
fn transfer_from(cri: &Containerd, pod: &Pod, size: usize) -> (usize, f64) {
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('::', {TRANSFER_PORT}))\n\
         s.listen(1)\n\
         print('ready', flush=True)\n\
         c, _ = s.accept()\n\
         samples, total = [(time.monotonic(), 0)], 0\n\
         while True:\n\
         \x20   data = c.recv(65536)\n\
         \x20   if not data:\n\
         \x20       break\n\
         \x20   total += len(data)\n\
         \x20   samples.append((time.monotonic(), total))\n\
         end = samples[-1][0]\n\
         start, got = next(x for x in samples if x[0] >= end - {TAIL_SECONDS})\n\
         print(total, (total - got) * 8 / max(end - start, 1e-6) / 1e6, flush=True)\n"
    );
    let blocks = size / 1000;
    let send =
        format!("dd if=/dev/zero bs=1000 count={blocks} 2>/dev/null | nc {NODE} {TRANSFER_PORT}");
    let ((code, said), result) = with_node_peer(cri, &script, pod, &send);
    assert_eq!(code, 0, "send from {}: {said}", pod.name);
    let mut numbers = result.split_whitespace();
    let bytes = numbers.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let rate = numbers
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN);
    (bytes, rate)
}

/// 10. `kubernetes.io/egress-bandwidth: 1M`: the bandwidth plugin shapes a
///     pod's egress on an ifb device, to which a tc filter (u32 classifier,
///     mirred action) redirects the host veth's ingress. Kernels without
///     tc classifiers cannot: there the pod must fail to start, with the
///     plugin's message and nothing left behind. Where the kernel has them,
///     a transfer out of the pod runs at no more than about 1.2 Mbit/s.
fn egress_bandwidth(cri: &Containerd) {
    const CHECK: &str = "10 egress bandwidth";
    let annotation = [("kubernetes.io/egress-bandwidth", "1M")];
    let redirects = kernel_redirects_to_ifb();
    eprintln!("{CHECK}: this kernel can redirect to ifb with a tc filter: {redirects}");
    let outcome = cri.run_pod_with("egress", &[], &annotation);
    if !redirects {
        let error = outcome
            .err()
            .unwrap_or_else(|| panic!("{CHECK}: the pod started without tc filters"));
        assert!(
            error.contains("bandwidth"),
            "{CHECK}: error without the plugin's message: {error}"
        );
        assert!(cri.pod_netns_files().is_empty(), "{CHECK}: netns left");
        assert!(cri.node.host_veths().is_empty(), "{CHECK}: veth left");
        let links = cri.node.ns.ip(&["link", "show"]);
        assert!(!links.contains("bwp"), "{CHECK}: ifb left: {links}");
        return;
    }
    let mut pod = outcome.unwrap_or_else(|e| panic!("{CHECK}: {e}"));
    cri.start_container(&mut pod);
    let veth = cri.host_veth_of(&pod.ip);
    let filters = cri
        .node
        .ns
        .run(&["tc", "filter", "show", "dev", &veth, "ingress"]);
    assert!(
        filters.contains("mirred (Egress Redirect to device bwp"),
        "{CHECK}: no redirect on {veth}: {filters}"
    );
    let ifb = filters
        .split("device ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_default()
        .to_string();
    let qdisc = cri.node.ns.run(&["tc", "qdisc", "show", "dev", &ifb]);
    assert!(
        qdisc.contains("qdisc tbf") && qdisc.contains("rate 1Mbit"),
        "{CHECK}: no 1 Mbit/s limit on {ifb}: {qdisc}"
    );
    let size = tbf_burst(&qdisc) / 100 * 95 + TRANSFER_BYTES;
    let (bytes, limited) = transfer_from(cri, &pod, size);
    eprintln!(
        "{CHECK}: {limited:.3} Mbit/s over the last {TAIL_SECONDS} s of {bytes} bytes out of the pod"
    );
    assert_eq!(bytes, size / 1000 * 1000, "{CHECK}: bytes out of the pod");
    assert!(
        limited <= 1.2,
        "{CHECK}: {limited:.3} Mbit/s out of a pod limited to 1 Mbit/s"
    );
    cri.stop(&pod.id)
        .and_then(|_| cri.remove(&pod.id))
        .unwrap_or_else(|e| panic!("{CHECK}: teardown: {e}"));
    let links = cri.node.ns.ip(&["link", "show"]);
    assert!(!links.contains(&ifb), "{CHECK}: {ifb} left: {links}");
}
