//! Test fixtures: a simulated node (a network namespace with a TUN standing
//! in for Mycelium) and pod namespaces, all under names of this test
//! process, deleted on drop (also when a test panics). The plugin binary
//! runs inside the node namespace, driven the way a runtime drives it.
#![allow(dead_code)]

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub const TUN: &str = "mctun0";
pub const NETWORK: &str = "mycnet";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `mcni<pid>-<n><suffix>`.
pub fn unique(suffix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("mcni{}-{n}{suffix}", std::process::id())
}

pub fn binary() -> String {
    std::env::var("MYCELIUM_CNI_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_mycelium-cni").to_string())
}

/// The build with test hooks (MYCELIUM_CNI_TEST_HASH_BITS), which the
/// release binary does not have: scripts/test.sh builds it with the
/// `test-hooks` feature into target/hooks and names it here.
pub fn hooks_binary() -> String {
    std::env::var("MYCELIUM_CNI_HOOKS_BIN").unwrap_or_else(|_| {
        panic!("MYCELIUM_CNI_HOOKS_BIN must name the build with --features test-hooks (scripts/test.sh sets it)")
    })
}

/// Without root, one line says what to run instead and the test binary
/// exits with a failure: not a wall of assertion panics, and no silent skip.
pub fn require_root() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // One thread prints and exits; the others wait for it.
        ONCE.call_once(exit_for_root);
    }
}

fn exit_for_root() {
    // Straight to fd 2: the harness captures eprintln! and would lose it
    // at exit.
    let line = "\nthe integration tests create network namespaces and need root: run `sudo scripts/test.sh` (the README's test command)\n";
    let _ = std::io::stderr().write_all(line.as_bytes());
    std::process::exit(1);
}

/// ADD's netlink requests in order (what the kill-point tests count with
/// strace's sendto), with the default egress (nat). On a node whose nf_tables table is as configured ADD
/// reads the table (flags, chains, rules) and changes nothing; on a node
/// without the table it finds none and sends one batch.
pub fn add_requests(table_in_place: bool) -> Vec<&'static str> {
    let mut requests = vec![
        "link of the Mycelium interface",
        "addresses of the Mycelium interface",
        "route into 400::/7",
        "nf_tables table flags",
    ];
    if table_in_place {
        requests.extend(["nf_tables chains", "nf_tables rules"]);
    } else {
        requests.push("nf_tables batch");
    }
    requests.extend([
        "CNI_IFNAME in the pod",
        "create the veth pair",
        "look up the host veth",
        "alias of the host veth",
        "fe80::1 on the host veth",
        "the /128 claim",
        "the pod interface",
        "pod interface up",
        "pod address",
        "lo up",
        "route 400::/7 in the pod",
        "route ::/0 in the pod",
        "169.254.1.1 on the host veth",
        "the /32 claim",
        "pod IPv4 address",
        "route 169.254.1.1 in the pod",
        "route 0.0.0.0/0 in the pod",
        "fast path elements",
    ]);
    requests
}

/// The 1-based number of request `name` (strace's `when=`).
pub fn request_number(requests: &[&str], name: &str) -> usize {
    let index = requests.iter().position(|r| *r == name);
    index.unwrap_or_else(|| panic!("no request {name:?} in {requests:?}")) + 1
}

/// Runs a command, panicking with its stderr when it fails.
pub fn sh(args: &[&str]) -> String {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a command and tells whether it succeeded.
pub fn try_sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A network namespace deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(suffix: &str) -> Netns {
        Netns::named(&unique(suffix))
    }

    pub fn named(name: &str) -> Netns {
        sh(&["ip", "netns", "add", name]);
        Netns { name: name.into() }
    }

    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "-n", &self.name];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// Runs a command inside this namespace; its stdout (panics on failure).
    pub fn run(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        sh(&all)
    }

    pub fn exec(&self, args: &[&str]) -> bool {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        try_sh(&all)
    }

    /// One ping, waiting at most 2 s.
    pub fn ping(&self, address: &str) -> bool {
        self.exec(&["ping", "-6", "-c", "1", "-W", "2", address])
    }

    /// Links, addresses and routes as `ip` shows them, for before/after comparisons.
    pub fn state(&self) -> String {
        let mut state = self.ip(&["-d", "link", "show"]);
        state += &self.ip(&["-6", "addr", "show"]);
        state += &self.ip(&["-6", "route", "show", "table", "all"]);
        state
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A simulated node: its own namespace with a TUN named `TUN` holding the
/// node's overlay address with prefix /7, as the Mycelium daemon sets it up.
pub struct Node {
    pub ns: Netns,
    pub address: String,
    /// How the plugin is started: the binary, or an emulator and the binary.
    pub program: Vec<String>,
    /// `sourceFilter` in `conf()`: off where nf_tables cannot be reached.
    pub source_filter: bool,
    /// `egress` in `conf()` when not the default (`nat`).
    pub egress: Option<&'static str>,
}

impl Node {
    pub fn new(address: &str) -> Node {
        Node::in_namespace(Netns::new("-node"), address)
    }

    /// A node in `ns` (which it deletes on drop).
    pub fn in_namespace(ns: Netns, address: &str) -> Node {
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["tuntap", "add", "dev", TUN, "mode", "tun"]);
        ns.ip(&["link", "set", TUN, "mtu", "1400", "up"]);
        ns.ip(&["-6", "addr", "add", &format!("{address}/7"), "dev", TUN]);
        Node {
            ns,
            address: address.into(),
            program: vec![binary()],
            source_filter: true,
            egress: None,
        }
    }

    pub fn standard() -> Node {
        Node::new("5fd:a395:1a8d:501d:f650:6887:2bd4:ee49")
    }

    /// This node, running the build with test hooks (`hooks_binary`).
    pub fn with_test_hooks(mut self) -> Node {
        self.program = vec![hooks_binary()];
        self
    }

    pub fn conf(&self, version: &str) -> Value {
        let mut conf = serde_json::json!({
            "cniVersion": version,
            "name": NETWORK,
            "type": "mycelium-cni",
            "myceliumInterface": TUN,
        });
        if !self.source_filter {
            conf["sourceFilter"] = false.into();
        }
        if let Some(egress) = self.egress {
            conf["egress"] = egress.into();
        }
        conf
    }

    /// Runs the plugin in this node's namespace with a clean environment;
    /// a run that hangs is killed after 60 s (exit code 124) instead of
    /// hanging the suite.
    pub fn run(&self, env: &[(&str, &str)], stdin: &str) -> Outcome {
        let mut command = Command::new("timeout");
        command
            .args(["60", "ip", "netns", "exec", &self.ns.name])
            .args(&self.program);
        run_with(command, env, stdin)
    }

    pub fn cni(
        &self,
        command: &str,
        container: &str,
        netns: &str,
        ifname: &str,
        conf: &Value,
    ) -> Outcome {
        self.cni_with(&[], command, container, netns, ifname, conf)
    }

    /// `cni` with extra environment variables (test hooks).
    pub fn cni_with(
        &self,
        extra: &[(&str, &str)],
        command: &str,
        container: &str,
        netns: &str,
        ifname: &str,
        conf: &Value,
    ) -> Outcome {
        let mut env = vec![
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", container),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", ifname),
            ("CNI_PATH", "/opt/cni/bin"),
        ];
        env.extend_from_slice(extra);
        self.run(&env, &conf.to_string())
    }

    /// Runs ADD of `container` (eth0 in `netns`) under strace, which kills
    /// it with SIGKILL on entry to the sendto of request `name` of
    /// `add_requests` (the moment before that netlink request).
    pub fn killed_add_before(
        &self,
        requests: &[&str],
        name: &str,
        container: &str,
        netns: &str,
        conf: &Value,
    ) -> Outcome {
        self.killed_add_at_request(request_number(requests, name), container, netns, conf)
    }

    /// Runs ADD of `container` (eth0 in `netns`) under strace, which kills
    /// it with SIGKILL on entry to its `n`th sendto: the moment before its
    /// `n`th netlink request.
    pub fn killed_add_at_request(
        &self,
        n: usize,
        container: &str,
        netns: &str,
        conf: &Value,
    ) -> Outcome {
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", container),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", "eth0"),
        ];
        let inject = format!("inject=sendto:signal=SIGKILL:when={n}");
        let mut command = Command::new("ip");
        command.args([
            "netns",
            "exec",
            &self.ns.name,
            "strace",
            "-o",
            "/dev/null",
            "-e",
            "trace=sendto",
            "-e",
            &inject,
            &binary(),
        ]);
        run_with(command, &env, &conf.to_string())
    }

    pub fn add(&self, container: &str, pod: &Netns, conf: &Value) -> Outcome {
        self.cni("ADD", container, &pod.path(), "eth0", conf)
    }

    pub fn del(&self, container: &str, netns: &str, conf: &Value) -> Outcome {
        self.cni("DEL", container, netns, "eth0", conf)
    }

    /// CHECK with `result` as prevResult.
    pub fn check(&self, container: &str, pod: &Netns, result: &Value, version: &str) -> Outcome {
        let mut conf = self.conf(version);
        conf["prevResult"] = result.clone();
        self.cni("CHECK", container, &pod.path(), "eth0", &conf)
    }

    /// Names of the links in the node namespace starting with `myc` (ours).
    pub fn host_veths(&self) -> Vec<String> {
        self.ns
            .ip(&["-o", "link", "show"])
            .lines()
            .filter_map(|line| line.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_string())
            .filter(|name| name.starts_with("myc"))
            .collect()
    }
}

/// Runs `command` the way a runtime runs a plugin: a clean environment with
/// `env`, `stdin` written and closed, stdout and stderr collected.
pub fn run_with(mut command: Command, env: &[(&str, &str)], stdin: &str) -> Outcome {
    command
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    Outcome::from(child.wait_with_output().expect("wait"))
}

pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(output: Output) -> Self {
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Outcome {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?} stderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts success and returns the result document.
    pub fn assert_ok(&self) -> Value {
        assert_eq!(
            self.code, 0,
            "plugin failed: {} {}",
            self.stdout, self.stderr
        );
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts a CNI error with `code` and returns its message.
    pub fn error(&self, code: u64) -> String {
        assert_ne!(self.code, 0, "plugin succeeded: {}", self.stdout);
        let error = self.json();
        assert_eq!(error["code"], code, "{error}");
        error["msg"].as_str().unwrap_or_default().to_string()
    }
}

/// The pod address of an ADD result, without the prefix length.
pub fn pod_address(result: &Value) -> String {
    let ips = result["ips"].as_array().expect("ips");
    let address = ips.last().expect("one ip")["address"]
        .as_str()
        .expect("address");
    address.split('/').next().unwrap_or_default().to_string()
}

/// Runs a conflist the way libcni does: ADD through the plugins in order,
/// each getting the previous result as prevResult; DEL in reverse order,
/// each getting the final ADD result. Plugins other than ours come from
/// Debian's containernetworking-plugins in /usr/lib/cni.
pub struct Chain<'a> {
    pub node: &'a Node,
    pub version: &'a str,
    pub name: &'a str,
    pub plugins: Vec<Value>,
    pub container: &'a str,
    pub netns: String,
    pub ifname: &'a str,
}

impl Chain<'_> {
    fn conf_for(&self, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut conf = plugin.clone();
        conf["cniVersion"] = self.version.into();
        conf["name"] = self.name.into();
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        conf
    }

    fn run(&self, command: &str, plugin: &Value, prev: Option<&Value>) -> Outcome {
        let kind = plugin["type"].as_str().expect("type");
        let path = if kind == "mycelium-cni" {
            binary()
        } else {
            format!("/usr/lib/cni/{kind}")
        };
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.node.ns.name, &path]);
        let env = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", self.container),
            ("CNI_NETNS", &self.netns),
            ("CNI_IFNAME", self.ifname),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=test",
            ),
            ("CNI_PATH", "/usr/lib/cni"),
        ];
        run_with(cmd, &env, &self.conf_for(plugin, prev).to_string())
    }

    pub fn add(&self) -> Value {
        let mut prev: Option<Value> = None;
        for plugin in &self.plugins {
            let outcome = self.run("ADD", plugin, prev.as_ref());
            assert_eq!(
                outcome.code, 0,
                "ADD {}: {} {}",
                plugin["type"], outcome.stdout, outcome.stderr
            );
            prev = Some(outcome.json());
        }
        prev.expect("at least one plugin")
    }

    /// CHECK through the plugins whose type is in `types`.
    pub fn check(&self, result: &Value, types: &[&str]) {
        let wanted = |p: &&Value| types.iter().any(|t| p["type"] == *t);
        for plugin in self.plugins.iter().filter(wanted) {
            let outcome = self.run("CHECK", plugin, Some(result));
            assert_eq!(
                outcome.code, 0,
                "CHECK {}: {} {}",
                plugin["type"], outcome.stdout, outcome.stderr
            );
        }
    }

    pub fn del(&self, result: &Value) {
        for plugin in self.plugins.iter().rev() {
            let outcome = self.run("DEL", plugin, Some(result));
            assert_eq!(
                outcome.code, 0,
                "DEL {}: {} {}",
                plugin["type"], outcome.stdout, outcome.stderr
            );
        }
    }
}

/// Two simulated nodes with different /64s, joined by a veth whose /64
/// routes stand in for the Mycelium overlay: each node routes the other's
/// /64 across it (more specific than its 400::/7 on the TUN).
pub struct Cluster {
    pub a: Node,
    pub b: Node,
}

pub const NODE_A: &str = "5fd:a395:1a8d:501d:f650:6887:2bd4:ee49";
pub const NODE_B: &str = "4aa:1:2:3:5e1f:27ff:fe11:b";

impl Cluster {
    pub fn new() -> Cluster {
        let (a, b) = (Node::new(NODE_A), Node::new(NODE_B));
        a.ns.ip(&[
            "link", "add", "ovl0", "type", "veth", "peer", "name", "ovl0", "netns", &b.ns.name,
        ]);
        for (node, own, other_prefix, other_gw) in [
            (&a, "fe80::a", "4aa:1:2:3::/64", "fe80::b"),
            (&b, "fe80::b", "5fd:a395:1a8d:501d::/64", "fe80::a"),
        ] {
            node.ns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{own}/64"),
                "dev",
                "ovl0",
                "nodad",
            ]);
            node.ns.ip(&["link", "set", "ovl0", "up"]);
            node.ns.ip(&[
                "-6",
                "route",
                "add",
                other_prefix,
                "via",
                other_gw,
                "dev",
                "ovl0",
            ]);
        }
        Cluster { a, b }
    }
}

/// A TCP server in a namespace answering every connection with `reply`, a
/// space and the client's address as the server sees it; stopped on drop.
pub struct Server {
    child: std::process::Child,
}

impl Server {
    pub fn start(ns: &Netns, port: u16, reply: &str) -> Server {
        use std::io::BufRead;
        let script = format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('::', {port}))\n\
             s.listen(16)\n\
             print('ready', flush=True)\n\
             while True:\n\
             \x20   c, peer = s.accept()\n\
             \x20   c.sendall(('{reply} ' + peer[0]).encode())\n\
             \x20   c.close()\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("server stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("server ready");
        assert_eq!(line.trim(), "ready");
        Server { child }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The packets the source filter's two drop rules counted: (IPv4, IPv6).
pub fn source_filter_drops(node: &Node) -> (u64, u64) {
    // The pod-source chain alone: other chains of the table (overlay
    // ingress, egress) have drop counters of their own.
    let table = node
        .ns
        .run(&["nft", "list", "chain", "inet", "mycelium-cni", "pod-source"]);
    let count = |line: &str| -> u64 {
        let after = line.split("counter packets ").nth(1).unwrap_or("");
        after
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let drops: Vec<&str> = table
        .lines()
        .filter(|line| line.contains(" drop"))
        .collect();
    // IPv4 from 0.0.0.0 or a foreign source; IPv6 from :: (not DAD) or a
    // foreign source; the solicitation meter's drops are not spoofing.
    assert_eq!(drops.len(), 6, "source filter rules: {table}");
    let ipv4 = drops
        .iter()
        .filter(|l| l.contains("ip saddr") || l.contains("nfproto ipv4"));
    let ipv6 = drops.iter().filter(|l| l.contains("ip6 saddr"));
    (ipv4.map(|l| count(l)).sum(), ipv6.map(|l| count(l)).sum())
}

/// Connects from `ns` to [address]:port over TCP and returns what it reads.
pub fn tcp_get(ns: &Netns, address: &str, port: u16) -> String {
    let script = format!(
        "import socket\n\
         s = socket.create_connection(('{address}', {port}), timeout=3)\n\
         print(s.recv(200).decode(), end='')\n"
    );
    let output = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", &script])
        .output()
        .expect("spawn client");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Addresses of a node's uplink (`Uplink`): the node and the "internet".
pub const NODE_V4: &str = "203.0.113.1";
pub const NET_V4: &str = "203.0.113.2";
pub const NODE_V6: &str = "2001:db8:e::1";
pub const NET_V6: &str = "2001:db8:e::2";
/// The node's uplink into an "internet" namespace that routes nothing back
/// to the pods: only NAT makes their connections work.
pub struct Uplink {
    pub net: Netns,
}

impl Uplink {
    pub fn new(node: &Node) -> Uplink {
        let net = Netns::new("-inet");
        net.ip(&["link", "set", "lo", "up"]);
        node.ns.ip(&[
            "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", &net.name,
        ]);
        for (ns, dev, v4, v6) in [
            (&node.ns, "up0", NODE_V4, NODE_V6),
            (&net, "eth0", NET_V4, NET_V6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", dev]);
            ns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        node.ns.ip(&["route", "add", "default", "via", NET_V4]);
        node.ns
            .ip(&["-6", "route", "add", "default", "via", NET_V6]);
        Uplink { net }
    }
}

/// The packet counts of the `counter`s in `ns`'s table `inet TABLE` (a
/// counting table of the test's own), in rule order.
pub fn counted(ns: &Netns, table: &str) -> Vec<u64> {
    let listing = ns.run(&["nft", "list", "table", "inet", table]);
    listing
        .lines()
        .filter_map(|line| line.split("counter packets ").nth(1))
        .map(|after| after.split(' ').next().unwrap_or("0").parse().unwrap_or(0))
        .collect()
}
