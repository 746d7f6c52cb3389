//! Real Mycelium daemons in node namespaces. Each node is a network
//! namespace of this test process with a daemon started in it
//! (`--disable-peer-discovery`, its own key and config file in a temporary
//! directory of the test, the API on 127.0.0.1 inside the namespace). The
//! daemon is found through `MYCELIUM_BIN`, then `mycelium` on `PATH`.
//!
//! On drop every daemon is stopped by its PID (SIGTERM, then SIGKILL if it
//! lingers), then the namespaces are deleted and the directory removed: also
//! after a failed assertion.

use crate::common::{Netns, Node, binary};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon's TUN, as a real node names it (`myc…` like our host veths:
/// the source filter must tell them apart).
pub const TUN: &str = "mycelium";
const API: &str = "http://127.0.0.1:8989/api/v1";

/// The daemon binary: `MYCELIUM_BIN`, then `mycelium` on `PATH`. Without one,
/// a single line says so and the test binary exits with a failure (no
/// silent pass).
pub fn daemon_binary() -> String {
    static FOUND: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    static ONCE: std::sync::Once = std::sync::Once::new();
    match FOUND.get_or_init(find_daemon) {
        Ok(path) => path.clone(),
        Err(why) => {
            // One thread prints and exits; the others wait for it.
            ONCE.call_once(|| {
                let line = format!("\nthe overlay tests need the Mycelium daemon: {why}\n");
                let _ = std::io::stderr().write_all(line.as_bytes());
                std::process::exit(1);
            });
            unreachable!("the process has exited")
        }
    }
}

fn find_daemon() -> Result<String, String> {
    let executable = |path: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if let Ok(path) = std::env::var("MYCELIUM_BIN") {
        return match executable(Path::new(&path)) {
            true => Ok(path),
            false => Err(format!("MYCELIUM_BIN={path} is not an executable file")),
        };
    }
    let dirs = std::env::var("PATH").unwrap_or_default();
    dirs.split(':')
        .map(|dir| Path::new(dir).join("mycelium"))
        .find(|path| executable(path))
        .map(|path| path.to_string_lossy().into_owned())
        .ok_or_else(|| "none found: set MYCELIUM_BIN to the `mycelium` binary or put it on PATH (.ci/run sets it to ../shared/mycelium/mycelium)".into())
}

/// Polls `done` every 20 ms until it holds; fails the test naming `what`
/// after `limit`. Returns how long it took.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "{what}: not within {:.1} s",
            limit.as_secs_f64()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// A directory of this test, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(suffix: &str) -> TempDir {
        let path = std::env::temp_dir().join(crate::common::unique(suffix));
        std::fs::create_dir_all(&path).expect("create temporary directory");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Sends `signal` to a process this fixture started.
pub fn signal(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill has no memory preconditions; the PID is that of a
        // child of this process not yet reaped.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Waits for a child for at most `limit`; kills it (SIGKILL) if it is still
/// running then. True when it exited by itself.
pub fn reap(child: &mut Child, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// A Mycelium daemon started in a node namespace. `ip netns exec` execs the
/// daemon, so the child's PID is the daemon's.
pub struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    pub fn start(ns: &Netns, dir: &Path, name: &str, peers: &[String]) -> Daemon {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, "peers = []\ndisable_peer_discovery = true\n")
            .expect("write daemon config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{name}.log")))
            .expect("daemon log");
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &ns.name, &daemon_binary()])
            .arg("--config-file")
            .arg(&config)
            .arg("--key-file")
            .arg(dir.join(format!("{name}.key")))
            .args(["--tun-name", TUN, "--disable-peer-discovery"])
            .args(["--tcp-listen-port", "9651", "--quic-listen-port", "9651"])
            .args(["--api-addr", "127.0.0.1:8989"])
            .args(["--jsonrpc-addr", "127.0.0.1:8990"]);
        if !peers.is_empty() {
            command.arg("--peers").args(peers);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("daemon log"))
            .stderr(log)
            .spawn()
            .expect("spawn the Mycelium daemon");
        Daemon { child: Some(child) }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM by PID; SIGKILL after 10 s. True when it stopped on SIGTERM.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        signal(child.id(), libc::SIGTERM);
        reap(&mut child, Duration::from_secs(10))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A node namespace with a real daemon. `node` drives the plugin in it
/// (its `address` is the daemon's, once up).
pub struct OverlayNode {
    pub label: &'static str,
    /// Dropped before `node`: the daemon stops before its namespace goes.
    daemon: Option<Daemon>,
    pub node: Node,
    pub subnet: String,
    dir: PathBuf,
    peers: Vec<String>,
}

impl OverlayNode {
    /// A fresh namespace with `lo` up and no daemon yet.
    pub fn new(label: &'static str, dir: &Path) -> OverlayNode {
        let ns = Netns::new(&format!("-ovl{}", label.to_lowercase()));
        ns.ip(&["link", "set", "lo", "up"]);
        OverlayNode {
            label,
            daemon: None,
            node: Node {
                ns,
                address: String::new(),
                program: vec![binary()],
                source_filter: true,
                egress: None,
            },
            subnet: String::new(),
            dir: dir.to_path_buf(),
            peers: Vec::new(),
        }
    }

    pub fn ns(&self) -> &Netns {
        &self.node.ns
    }

    pub fn set_peers(&mut self, peers: Vec<String>) {
        self.peers = peers;
    }

    pub fn start_daemon(&mut self) {
        assert!(
            self.daemon.is_none(),
            "{}: daemon already running",
            self.label
        );
        let name = format!("node-{}", self.label);
        self.daemon = Some(Daemon::start(self.ns(), &self.dir, &name, &self.peers));
    }

    /// Stops the daemon by its PID; true if it ended on SIGTERM.
    pub fn stop_daemon(&mut self) -> bool {
        self.daemon.take().is_none_or(|mut daemon| daemon.stop())
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().and_then(Daemon::pid)
    }

    /// SIGTERM without waiting: stopping several daemons at once.
    pub fn signal_daemon(&self) {
        if let Some(pid) = self.daemon_pid() {
            signal(pid, libc::SIGTERM);
        }
    }

    /// The last lines of this node's daemon log, for failure messages.
    pub fn log_tail(&self) -> String {
        let path = self.dir.join(format!("node-{}.log", self.label));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// GET on the daemon's HTTP API inside the namespace; None while it
    /// does not answer.
    pub fn api(&self, path: &str) -> Option<Value> {
        let url = format!("{API}/{path}");
        let output = Command::new("ip")
            .args(["netns", "exec", &self.ns().name, "curl", "-sf"])
            .args(["--max-time", "2", &url])
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// The global address on the TUN, if any.
    pub fn tun_address(&self) -> Option<String> {
        let output = Command::new("ip")
            .args([
                "-n",
                &self.ns().name,
                "-6",
                "-o",
                "addr",
                "show",
                "dev",
                TUN,
            ])
            .args(["scope", "global"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let field = text
            .split_whitespace()
            .skip_while(|f| *f != "inet6")
            .nth(1)?;
        Some(field.split('/').next()?.to_string())
    }

    pub fn has_tun(&self) -> bool {
        crate::common::try_sh(&["ip", "-n", &self.ns().name, "link", "show", TUN])
    }

    /// Waits (bounded) for the API to answer and the TUN to carry the node
    /// address it reports; records the address and the node /64.
    pub fn wait_up(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let admin = self.api("admin").unwrap_or(Value::Null);
            if let Some(address) = admin["nodeIp"].as_str() {
                if self.tun_address().as_deref() == Some(address) {
                    self.node.address = address.into();
                    self.subnet = admin["nodeSubnet"].as_str().unwrap_or_default().into();
                    return started.elapsed();
                }
            }
            assert!(
                started.elapsed() < limit,
                "node {}: API answering and the node address on the TUN, not within {limit:?}; log:\n{}",
                self.label,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The subnets of the API's selected routes, with their next hops.
    pub fn selected(&self) -> Vec<(String, String)> {
        let routes = self.api("admin/routes/selected").unwrap_or(Value::Null);
        let Some(routes) = routes.as_array() else {
            return Vec::new();
        };
        routes
            .iter()
            .map(|r| {
                let text = |key: &str| r[key].as_str().unwrap_or_default().to_string();
                (text("subnet"), text("nextHop"))
            })
            .collect()
    }

    /// Waits (bounded) until the API's selected routes list `other`'s /64.
    /// Each round first pings `other`'s address: Mycelium sends a peer that
    /// connected after it learnt a route only its own subnet, and the rest
    /// at its periodic update (a minute or more) or when asked, which
    /// traffic to a subnet without a route does (a route request).
    pub fn wait_route(&self, other: &OverlayNode, limit: Duration) -> Duration {
        let started = Instant::now();
        while !self.selected().iter().any(|(s, _)| *s == other.subnet) {
            assert!(
                started.elapsed() < limit,
                "node {}: selected route to {}: not within {limit:?}; log:\n{}",
                self.label,
                other.subnet,
                self.log_tail()
            );
            let _ = self
                .ns()
                .exec(&["ping", "-6", "-c", "1", "-W", "0.2", &other.node.address]);
        }
        started.elapsed()
    }

    /// The plugin's config for `network` on this node (its TUN named).
    pub fn conf(&self, network: &str) -> Value {
        let mut conf = self.node.conf("1.1.0");
        conf["name"] = network.into();
        conf["myceliumInterface"] = TUN.into();
        conf
    }

    /// True when `address` lies in this node's /64 as the API reports it.
    pub fn owns(&self, address: &str) -> bool {
        let prefix = self.subnet.strip_suffix("/64").unwrap_or("-");
        match (address.parse::<Ipv6Addr>(), prefix.parse::<Ipv6Addr>()) {
            (Ok(a), Ok(p)) => a.segments()[..4] == p.segments()[..4],
            _ => false,
        }
    }

    /// An address of this node's /64 that no one holds.
    pub fn unused_address(&self) -> String {
        let prefix = self.subnet.strip_suffix("::/64").unwrap_or("-");
        format!("{prefix}:dead:beef:0:9")
    }
}

/// A pod: its namespace and what ADD returned.
pub struct Pod {
    pub ns: Netns,
    pub container: String,
    pub conf: Value,
    pub result: Value,
    pub address: String,
}

impl Pod {
    pub fn attach(node: &OverlayNode, container: &str, conf: Value) -> Pod {
        let ns = Netns::new("-ovlpod");
        let result = node.node.add(container, &ns, &conf).assert_ok();
        let address = crate::common::pod_address(&result);
        Pod {
            ns,
            container: container.into(),
            conf,
            result,
            address,
        }
    }

    /// The MTU of the pod's eth0.
    pub fn mtu(&self) -> u32 {
        link_mtu(&self.ns, "eth0")
    }
}

pub fn link_mtu(ns: &Netns, link: &str) -> u32 {
    let text = ns.ip(&["-o", "link", "show", link]);
    let mtu = text.split_whitespace().skip_while(|f| *f != "mtu").nth(1);
    mtu.and_then(|m| m.parse().ok()).unwrap_or(0)
}

/// One ping of `size` bytes of payload that may not be fragmented, waiting
/// at most `seconds`.
pub fn ping_sized(ns: &Netns, address: &str, size: u32, seconds: u32) -> bool {
    ns.exec(&[
        "ping",
        "-6",
        "-c",
        "1",
        "-W",
        &seconds.to_string(),
        "-s",
        &size.to_string(),
        "-M",
        "do",
        address,
    ])
}

/// One ping waiting at most 1 s: for pings that must not be answered.
pub fn ping_quick(ns: &Netns, address: &str) -> bool {
    ns.exec(&["ping", "-6", "-c", "1", "-W", "1", address])
}

/// Connects over TCP from `ns` and returns what the server said; empty when
/// the connection did not happen within `seconds`.
pub fn tcp_get_within(ns: &Netns, address: &str, port: u16, seconds: u32) -> String {
    let script = format!(
        "import socket\n\
         s = socket.create_connection(('{address}', {port}), timeout={seconds})\n\
         print(s.recv(200).decode(), end='')\n"
    );
    let output = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", &script])
        .stderr(Stdio::null())
        .output()
        .expect("spawn client");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A TCP sink in a namespace: takes one connection, reads to its end and
/// reports the byte count, the SHA-256 and the peer's address.
pub struct Sink {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Sink {
    pub fn start(ns: &Netns, port: u16) -> Sink {
        let script = format!(
            "import socket, hashlib\n\
             s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('::', {port}))\n\
             s.listen(1)\n\
             s.settimeout(30)\n\
             print('ready', flush=True)\n\
             c, peer = s.accept()\n\
             c.settimeout(30)\n\
             h, n = hashlib.sha256(), 0\n\
             while True:\n\
             \x20   b = c.recv(65536)\n\
             \x20   if not b: break\n\
             \x20   h.update(b); n += len(b)\n\
             print(n, h.hexdigest(), peer[0], flush=True)\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sink");
        let mut stdout = BufReader::new(child.stdout.take().expect("sink stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("sink ready");
        assert_eq!(line.trim(), "ready", "sink did not start");
        Sink { child, stdout }
    }

    /// What the sink received: "<bytes> <sha256> <peer>".
    pub fn received(mut self) -> String {
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        line.trim().to_string()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `bytes` random bytes from `ns` to [address]:port and closes;
/// returns "<bytes> <sha256>" of what it sent.
pub fn send_random(ns: &Netns, address: &str, port: u16, bytes: usize) -> String {
    let script = format!(
        "import socket, hashlib, os\n\
         data = os.urandom({bytes})\n\
         s = socket.create_connection(('{address}', {port}), timeout=30)\n\
         s.sendall(data)\n\
         s.shutdown(socket.SHUT_WR)\n\
         s.recv(1)\n\
         print(len(data), hashlib.sha256(data).hexdigest())\n"
    );
    let output = Command::new("timeout")
        .args([
            "60", "ip", "netns", "exec", &ns.name, "python3", "-c", &script,
        ])
        .output()
        .expect("spawn sender");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// From `ns`, sends 3 UDP datagrams and 3 ICMPv6 echo requests from each
/// source to each destination (the sources must be addresses of `ns`).
/// Sending only: nothing waits for an answer. Each datagram goes to its own
/// port: Mycelium writes datagrams of one flow out on the far side as one
/// coalesced packet (its TUN has UDP segmentation offload), which a packet
/// counter would count once.
pub fn send_from(ns: &Netns, sources: &[&str], destinations: &[&str]) {
    let script = "import socket, sys\n\
         echo = bytes([128, 0, 0, 0, 0x6d, 0x63, 0, 1]) + b'mcni'\n\
         for src in sys.argv[1].split(','):\n\
         \x20   u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n\
         \x20   u.bind((src, 0))\n\
         \x20   i = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)\n\
         \x20   i.bind((src, 0))\n\
         \x20   for dst in sys.argv[2].split(','):\n\
         \x20       for port in (9, 10, 11):\n\
         \x20           u.sendto(b'mcni', (dst, port))\n\
         \x20           i.sendto(echo, (dst, 0))\n";
    ns.run(&[
        "python3",
        "-c",
        script,
        &sources.join(","),
        &destinations.join(","),
    ]);
}

/// Three nodes in a line, A - B - C: a veth with IPv4 addresses between A
/// and B and another between B and C; A's daemon peers only with B, C's only
/// with B, B names no peer. `baseline` is each node's links, addresses,
/// routes and nf_tables ruleset before its daemon started.
pub struct Line {
    pub a: OverlayNode,
    pub b: OverlayNode,
    pub c: OverlayNode,
    pub baseline: Vec<(String, String)>,
    /// Last: removed once the daemons are stopped and the namespaces gone.
    pub dir: TempDir,
}

pub const B_FROM_A: &str = "10.201.1.2";
pub const B_FROM_C: &str = "10.201.2.1";

impl Line {
    pub fn start() -> Line {
        let dir = TempDir::new("-overlay");
        let mut line = Line {
            a: OverlayNode::new("A", &dir.path),
            b: OverlayNode::new("B", &dir.path),
            c: OverlayNode::new("C", &dir.path),
            baseline: Vec::new(),
            dir,
        };
        link(
            &line.a,
            ("ab0", "10.201.1.1/24"),
            &line.b,
            ("ba0", "10.201.1.2/24"),
        );
        link(
            &line.b,
            ("bc0", "10.201.2.1/24"),
            &line.c,
            ("cb0", "10.201.2.2/24"),
        );
        line.baseline = line.nodes().iter().map(|n| node_state(n)).collect();
        line.a.set_peers(vec![format!("tcp://{B_FROM_A}:9651")]);
        line.c.set_peers(vec![format!("tcp://{B_FROM_C}:9651")]);
        // B first: A and C connect to a listening B (a failed connect
        // is retried only 5 s later).
        line.b.start_daemon();
        line.b.wait_up(Duration::from_secs(15));
        for node in [&mut line.a, &mut line.c] {
            node.start_daemon();
        }
        for node in [&mut line.a, &mut line.c] {
            node.wait_up(Duration::from_secs(15));
        }
        line.wait_converged(Duration::from_secs(30));
        line
    }

    pub fn nodes(&self) -> [&OverlayNode; 3] {
        [&self.a, &self.b, &self.c]
    }

    /// Every node's API selects a route to each other node's /64.
    pub fn wait_converged(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        for node in self.nodes() {
            for other in self.nodes() {
                if other.label != node.label {
                    let left = limit.saturating_sub(started.elapsed());
                    node.wait_route(other, left);
                }
            }
        }
        started.elapsed()
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        // All at once; each node then reaps its own (SIGKILL if it lingers).
        for node in self.nodes() {
            node.signal_daemon();
        }
    }
}

/// A veth between two nodes, IPv4 only (no IPv6 link-local: the node's
/// state then stays the same while the test runs).
fn link(
    x: &OverlayNode,
    (x_if, x_addr): (&str, &str),
    y: &OverlayNode,
    (y_if, y_addr): (&str, &str),
) {
    x.ns().ip(&[
        "link",
        "add",
        x_if,
        "type",
        "veth",
        "peer",
        "name",
        y_if,
        "netns",
        &y.ns().name,
    ]);
    for (node, name, address) in [(x, x_if, x_addr), (y, y_if, y_addr)] {
        node.ns().ip(&["link", "set", name, "addrgenmode", "none"]);
        node.ns().ip(&["addr", "add", address, "dev", name]);
        node.ns().ip(&["link", "set", name, "up"]);
    }
    for (node, name) in [(x, x_if), (y, y_if)] {
        wait_until(&format!("{name} up"), Duration::from_secs(5), || {
            node.ns()
                .ip(&["-o", "link", "show", name])
                .contains("state UP")
        });
    }
}

/// Links, addresses and routes (IPv4 and IPv6).
pub fn ip_state(node: &OverlayNode) -> String {
    let mut state = node.ns().state();
    state += &node.ns().ip(&["-4", "addr", "show"]);
    state += &node.ns().ip(&["-4", "route", "show", "table", "all"]);
    state
}

pub fn nft_ruleset(node: &OverlayNode) -> String {
    node.ns().run(&["nft", "list", "ruleset"])
}

/// Links, addresses, routes and the nf_tables ruleset.
pub fn node_state(node: &OverlayNode) -> (String, String) {
    (ip_state(node), nft_ruleset(node))
}
