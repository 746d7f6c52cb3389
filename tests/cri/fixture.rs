//! containerd (Debian's package) with its CRI plugin, set up as on a k3s
//! node, inside a simulated node: its own network namespace (the node's,
//! with the TUN) and its own mount namespace, where a private /run holds
//! its shim sockets and the pods' netns files. Its root, state, socket and
//! config live under /tmp/<tag>; the CNI directories are laid out as
//! `install --k3s --root` lays them out. Nothing of the host's /etc/cni,
//! /opt/cni, /var/lib/containerd or /run is used.
//!
//! Everything this fixture starts carries its tag `mcnicri<pid>`: the
//! directory in every command line, the pods' cgroup parent, the node's
//! netns name. `sweep` kills (by PID) and removes what carries a tag, so a
//! killed run is cleaned up by the next one.

use crate::common::{Netns, Node, sh};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TAG_PREFIX: &str = "mcnicri";
pub const PAUSE_IMAGE: &str = "localhost/mcni-cri/pause:1";
pub const IMAGE: &str = "localhost/mcni-cri/busybox:1";
pub const WEB_PORT: u16 = 8080;
pub const PAGE: &str = "hello-from-pod";

pub struct Containerd {
    pub node: Node,
    pub dir: PathBuf,
    tag: String,
    python: String,
    holder: Child,
    daemon: Option<Child>,
}

/// A running sandbox, as the kubelet stand-in knows it.
pub struct Pod {
    pub name: String,
    pub id: String,
    pub config: Value,
    pub ip: String,
    pub container: Option<String>,
}

/// One CNI call, recorded by the wrapper on the plugin path; after a DEL
/// also the node's links and routes at the moment DEL returned.
#[derive(Debug, Clone)]
pub struct Call {
    pub command: String,
    pub status: String,
    pub container_id: String,
    pub netns: String,
    pub args: String,
    pub links: String,
    pub routes: String,
}

impl Containerd {
    /// A node whose TUN has no overlay address yet, and containerd on it
    /// with an empty CNI config directory: the state of a node at boot.
    pub fn start(address: &str) -> Containerd {
        sweep_stale();
        let tag = format!("{TAG_PREFIX}{}", std::process::id());
        let dir = PathBuf::from(format!("/tmp/{tag}"));
        let node = Node::in_namespace(Netns::named(&format!("{tag}-node")), address);
        node.ns
            .ip(&["-6", "addr", "flush", "dev", crate::common::TUN]);
        for sub in ["root", "state", "opt", "logs", "pb", "k3s"] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        let holder = start_holder(&node, &dir);
        let mut containerd = Containerd {
            node,
            dir,
            tag,
            python: python(),
            holder,
            daemon: None,
        };
        containerd.write_config();
        containerd.compile_proto();
        containerd.start_daemon();
        containerd.import_images();
        containerd
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.dir.join("k3s/var/lib/rancher/k3s/data/cni")
    }

    pub fn conf_dir(&self) -> PathBuf {
        self.dir.join("k3s/var/lib/rancher/k3s/agent/etc/cni/net.d")
    }

    fn write_config(&self) {
        let d = self.dir.display();
        let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
             \"io.containerd.snapshotter.v1.devmapper\", \"io.containerd.snapshotter.v1.aufs\"]\n\
             [grpc]\n  address = \"{d}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n\
             [{cri}]\n  sandbox_image = \"{PAUSE_IMAGE}\"\n  restrict_oom_score_adj = true\n\
             \x20 stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n\
             [{cri}.containerd]\n  snapshotter = \"native\"\n  default_runtime_name = \"runc\"\n\
             [{cri}.containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\
             [{cri}.containerd.runtimes.runc.options]\n  SystemdCgroup = false\n\
             [{cri}.cni]\n  bin_dir = \"{}\"\n  conf_dir = \"{}\"\n",
            self.bin_dir().display(),
            self.conf_dir().display(),
        );
        std::fs::create_dir_all(self.bin_dir()).expect("mkdir bin");
        std::fs::create_dir_all(self.conf_dir()).expect("mkdir conf");
        std::fs::write(self.dir.join("config.toml"), config).expect("write config.toml");
        // k3s ships the reference plugins beside ours (symlinks to its
        // multi-call binary; here to Debian's).
        for plugin in ["loopback", "portmap", "bandwidth"] {
            std::os::unix::fs::symlink(
                format!("/usr/lib/cni/{plugin}"),
                self.bin_dir().join(plugin),
            )
            .expect("link plugin");
        }
    }

    fn compile_proto(&self) {
        let protos = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cri");
        sh(&[
            &self.python,
            "-m",
            "grpc_tools.protoc",
            &format!("-I{}", protos.display()),
            &format!("--python_out={}", self.dir.join("pb").display()),
            "api.proto",
        ]);
    }

    pub fn start_daemon(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .expect("open containerd.log");
        let daemon = Command::new("nsenter")
            .args([
                "-t",
                &self.holder.id().to_string(),
                "-m",
                "-n",
                "containerd",
            ])
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        self.daemon = Some(daemon);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.cri("Version", json!({})).is_err() {
            assert!(Instant::now() < deadline, "containerd did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, as systemd stops it; the shims and pods keep running.
    pub fn stop_daemon(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            signal(daemon.id(), libc::SIGTERM);
            let _ = daemon.wait();
        }
    }

    fn import_images(&self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cri/oci_image.py");
        let script = script.to_str().expect("utf-8 path");
        let pause = self.dir.join("pause.tar");
        let busybox = self.dir.join("busybox.tar");
        let (pause, busybox) = (pause.to_str().unwrap(), busybox.to_str().unwrap());
        sh(&[
            "python3",
            script,
            pause,
            PAUSE_IMAGE,
            "/bin/sleep",
            "2147483647",
            "--applet",
            "sleep",
        ]);
        let page = format!("www/index.html={PAGE}");
        let port = WEB_PORT.to_string();
        let mut args = vec![
            "python3",
            script,
            busybox,
            IMAGE,
            "/bin/httpd",
            "-f",
            "-p",
            &port,
        ];
        args.extend(["-h", "/www", "--file", &page]);
        for applet in [
            "sh", "ping", "ip", "sleep", "httpd", "nc", "printf", "cat", "wc",
        ] {
            args.extend(["--applet", applet]);
        }
        sh(&args);
        let socket = self.socket();
        for image in [pause, busybox] {
            sh(&[
                "ctr",
                "--address",
                &socket,
                "-n",
                "k8s.io",
                "images",
                "import",
                image,
            ]);
        }
    }

    fn socket(&self) -> String {
        self.dir.join("containerd.sock").display().to_string()
    }

    /// One CRI call through the kubelet stand-in: the response, or the
    /// gRPC error ("CODE: details").
    pub fn cri(&self, method: &str, request: Value) -> Result<Value, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cri/cri_client.py");
        let output = Command::new(&self.python)
            .arg(script)
            .args([&self.socket(), method, &request.to_string()])
            .env("CRI_PB_DIR", self.dir.join("pb"))
            .output()
            .expect("spawn cri_client.py");
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
        }
        Ok(serde_json::from_slice(&output.stdout).expect("response JSON"))
    }

    pub fn call(&self, method: &str, request: Value) -> Value {
        self.cri(method, request)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// CRI `Status`'s NetworkReady condition.
    pub fn network_ready(&self) -> bool {
        let status = self.call("Status", json!({}));
        let conditions = status["status"]["conditions"].as_array().cloned();
        conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c["type"] == "NetworkReady" && c["status"] == true)
    }

    /// The sandbox config kubelet sends: metadata, hostname, log directory,
    /// DNS, namespace options, cgroup parent (our tag), port mappings.
    /// `annotations` are the pod's, which kubelet copies into the sandbox's.
    pub fn sandbox_config(
        &self,
        name: &str,
        ports: &[(u16, u16)],
        annotations: &[(&str, &str)],
    ) -> Value {
        let logs = self.dir.join("logs").join(name);
        std::fs::create_dir_all(&logs).expect("mkdir logs");
        let port_mappings: Vec<Value> = ports
            .iter()
            .map(|(host, container)| {
                json!({"protocol": "TCP", "container_port": container, "host_port": host})
            })
            .collect();
        let mut all = json!({"kubernetes.io/config.source": "api"});
        for (key, value) in annotations {
            all[*key] = (*value).into();
        }
        json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"), "namespace": "default", "attempt": 0},
            "hostname": name,
            "log_directory": logs.display().to_string(),
            "dns_config": {"servers": ["fd00:10:96::a"], "searches": ["default.svc.cluster.local"], "options": ["ndots:5"]},
            "port_mappings": port_mappings,
            "labels": {"app": name, "io.kubernetes.pod.namespace": "default"},
            "annotations": all,
            "linux": {
                "cgroup_parent": format!("/{}/pod-{name}", self.tag),
                "security_context": {"namespace_options": {"network": "POD", "pid": "CONTAINER", "ipc": "POD"}},
            },
        })
    }

    pub fn run_pod(&self, name: &str, ports: &[(u16, u16)]) -> Result<Pod, String> {
        self.run_pod_with(name, ports, &[])
    }

    /// `run_pod` with pod annotations.
    pub fn run_pod_with(
        &self,
        name: &str,
        ports: &[(u16, u16)],
        annotations: &[(&str, &str)],
    ) -> Result<Pod, String> {
        let config = self.sandbox_config(name, ports, annotations);
        let reply = self.cri("RunPodSandbox", json!({"config": config}))?;
        let id = reply["pod_sandbox_id"]
            .as_str()
            .expect("sandbox id")
            .to_string();
        let ip = self.pod_ip(&id);
        Ok(Pod {
            name: name.into(),
            id,
            config,
            ip,
            container: None,
        })
    }

    /// The IP kubelet would publish: PodSandboxStatus.network.ip.
    pub fn pod_ip(&self, id: &str) -> String {
        let status = self.call("PodSandboxStatus", json!({"pod_sandbox_id": id}));
        status["status"]["network"]["ip"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Starts the web container (busybox httpd) in the pod, with
    /// NET_ADMIN so that it can try to forge its source address.
    pub fn start_container(&self, pod: &mut Pod) {
        let config = json!({
            "metadata": {"name": "web", "attempt": 0},
            "image": {"image": IMAGE},
            "log_path": "web.log",
            "linux": {"security_context": {"capabilities": {"add_capabilities": ["NET_ADMIN", "NET_RAW"]}}},
        });
        let request =
            json!({"pod_sandbox_id": pod.id, "config": config, "sandbox_config": pod.config});
        let created = self.call("CreateContainer", request);
        let id = created["container_id"].as_str().expect("container id");
        self.call("StartContainer", json!({"container_id": id}));
        pod.container = Some(id.to_string());
    }

    /// Runs a command in the pod's container: (exit code, stdout + stderr).
    pub fn exec(&self, pod: &Pod, cmd: &[&str]) -> (i64, String) {
        let id = pod.container.as_deref().expect("pod has a container");
        let reply = self.call(
            "ExecSync",
            json!({"container_id": id, "cmd": cmd, "timeout": 10}),
        );
        let text = format!(
            "{}{}",
            reply["stdout"].as_str().unwrap_or(""),
            reply["stderr"].as_str().unwrap_or("")
        );
        (reply["exit_code"].as_i64().unwrap_or(-1), text)
    }

    /// An HTTP GET from the pod's container (busybox nc: busybox-static's
    /// wget crashes on this host).
    pub fn http_get(&self, pod: &Pod, address: &str, port: u16) -> (i64, String) {
        let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} {port}");
        self.exec(pod, &["sh", "-c", &get])
    }

    /// What the pod's container wrote (kubelet's log file), for messages.
    pub fn container_log(&self, pod: &Pod) -> String {
        let log = self.dir.join("logs").join(&pod.name).join("web.log");
        std::fs::read_to_string(log).unwrap_or_default()
    }

    pub fn stop(&self, id: &str) -> Result<Value, String> {
        self.cri("StopPodSandbox", json!({"pod_sandbox_id": id}))
    }

    pub fn remove(&self, id: &str) -> Result<Value, String> {
        self.cri("RemovePodSandbox", json!({"pod_sandbox_id": id}))
    }

    pub fn sandboxes(&self) -> Vec<Value> {
        let list = self.call("ListPodSandbox", json!({}));
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Puts a wrapper on the plugin path: it runs the installed plugin and
    /// records the call and, after DEL, the node's links and routes at the
    /// moment DEL returned (containerd deletes the netns right after).
    pub fn wrap_plugin(&self) {
        let plugin = self.bin_dir().join("mycelium-cni");
        let real = self.bin_dir().join("mycelium-cni.real");
        std::fs::rename(&plugin, &real).expect("move plugin");
        let wrapper = format!(
            "#!/bin/sh\n\
             input=$(cat)\n\
             output=$(printf '%s' \"$input\" | {real}); status=$?\n\
             printf '%s\\n' \"$output\"\n\
             links='' routes=''\n\
             if [ \"$CNI_COMMAND\" = DEL ]; then\n\
             \x20 links=$(ip -o link show | cut -d: -f2 | tr -d ' ' | tr '\\n' ,)\n\
             \x20 routes=$(ip -6 route show | cut -d' ' -f1 | tr '\\n' ,)\n\
             fi\n\
             printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' \"$CNI_COMMAND\" \"$status\" \"$CNI_CONTAINERID\" \
             \"$CNI_NETNS\" \"$CNI_ARGS\" \"$links\" \"$routes\" >> {log}\n\
             exit $status\n",
            real = real.display(),
            log = self.dir.join("calls.log").display(),
        );
        let temporary = self.bin_dir().join(".wrapper");
        std::fs::write(&temporary, wrapper).expect("write wrapper");
        sh(&["chmod", "755", temporary.to_str().unwrap()]);
        std::fs::rename(&temporary, &plugin).expect("install wrapper");
    }

    pub fn calls(&self) -> Vec<Call> {
        let log = std::fs::read_to_string(self.dir.join("calls.log")).unwrap_or_default();
        log.lines()
            .map(|line| {
                let field: Vec<&str> = line.split('\t').collect();
                let get = |i: usize| field.get(i).copied().unwrap_or("").to_string();
                Call {
                    command: get(0),
                    status: get(1),
                    container_id: get(2),
                    netns: get(3),
                    args: get(4),
                    links: get(5),
                    routes: get(6),
                }
            })
            .collect()
    }

    pub fn calls_for(&self, id: &str, command: &str) -> Vec<Call> {
        let calls = self.calls().into_iter();
        calls
            .filter(|c| c.container_id == id && c.command == command)
            .collect()
    }

    /// The netns files containerd holds (its private /run/netns).
    pub fn pod_netns_files(&self) -> Vec<String> {
        let holder = self.holder.id().to_string();
        let list = "ls /run/netns 2>/dev/null; true";
        let listing = sh(&["nsenter", "-t", &holder, "-m", "sh", "-c", list]);
        listing.split_whitespace().map(String::from).collect()
    }

    /// The node's host veth routing to `ip` (`ip -6 route get`).
    pub fn host_veth_of(&self, ip: &str) -> String {
        let route = self
            .node
            .ns
            .ip(&["-6", "route", "show", &format!("{ip}/128")]);
        let mut words = route.split_whitespace();
        words.find(|w| *w == "dev");
        words.next().unwrap_or("").to_string()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop_daemon();
        sweep(&self.tag);
        let _ = self.holder.wait();
    }
}

fn python() -> String {
    let python = std::env::var("MYCELIUM_CNI_PYTHON")
        .unwrap_or_else(|_| format!("{}/target/venv/bin/python", env!("CARGO_MANIFEST_DIR")));
    let has_grpc = Command::new(&python)
        .args(["-c", "import grpc, grpc_tools"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        has_grpc,
        "{python} lacks grpcio/grpcio-tools: run scripts/test.sh (it installs them into target/venv)"
    );
    python
}

/// The process that keeps containerd's mount namespace: the node's netns, a
/// private mount namespace, a tmpfs on /run. (nsenter, not `ip netns exec`,
/// which would remount /sys and hide the cgroup mounts runc needs.)
fn start_holder(node: &Node, dir: &Path) -> Child {
    let keep = dir.join("holder");
    std::fs::write(&keep, "").expect("write holder marker");
    let script = format!(
        "mount -t tmpfs {TAG_PREFIX} /run && exec tail -f {}",
        keep.display()
    );
    let holder = Command::new("nsenter")
        .arg(format!("--net={}", node.ns.path()))
        .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
        .arg(script)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn holder");
    let cmdline = format!("/proc/{}/cmdline", holder.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read(&cmdline)
        .unwrap_or_default()
        .starts_with(b"tail")
    {
        assert!(
            Instant::now() < deadline,
            "mount namespace holder did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    holder
}

fn signal(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill has no memory preconditions; the PID is one this
        // fixture started or found carrying its tag.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Tags of earlier runs whose test process is gone.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(TAG_PREFIX) else {
            continue;
        };
        let alive = pid.parse::<u32>().is_ok() && Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            sweep(&name);
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("{name}-node")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Kills, by PID, every process of `tag` (the pods' processes by their
/// cgroups, the rest by the tag in their command line), then removes its
/// cgroups and its directory.
pub fn sweep(tag: &str) {
    let cgroups = tag_cgroups(tag);
    for _ in 0..3 {
        let mut pids: Vec<u32> = cgroups
            .iter()
            .filter_map(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).ok())
            .flat_map(|procs| {
                procs
                    .lines()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        pids.extend(tagged_processes(tag));
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            signal(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for dir in cgroups.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
    let _ = std::fs::remove_dir_all(format!("/tmp/{tag}"));
}

/// The cgroup directories under `/<tag>` in every hierarchy, parents first.
fn tag_cgroups(tag: &str) -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from(format!("/sys/fs/cgroup/{tag}"))];
    if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(hierarchies.flatten().map(|h| h.path().join(tag)));
    }
    let mut found = Vec::new();
    let mut pending: Vec<PathBuf> = roots.into_iter().filter(|p| p.is_dir()).collect();
    while let Some(dir) = pending.pop() {
        if let Ok(children) = std::fs::read_dir(&dir) {
            pending.extend(children.flatten().map(|c| c.path()).filter(|p| p.is_dir()));
        }
        found.push(dir);
    }
    found.sort_by_key(|p| p.components().count());
    found
}

/// Processes whose command line names the tag's directory.
fn tagged_processes(tag: &str) -> Vec<u32> {
    let needle = format!("/tmp/{tag}/");
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own)
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&needle)
        })
        .collect()
}
