//! A real runtime: podman 4 with its CNI backend runs containers on our
//! networks. Podman runs inside a simulated node's network namespace (via
//! nsenter, so mounts stay shared) with its own storage, config and plugin
//! directory under a temporary folder; everything is removed afterwards.
//! Root; needs podman, runc, busybox-static, curl (scripts/test.sh installs them).

mod common;

use common::{Node, TUN, sh, unique};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

const IMAGE: &str = "localhost/mcni-busybox:latest";
const APPLETS: [&str; 6] = ["sh", "ping", "ip", "sleep", "httpd", "cat"];

struct Podman {
    node: Node,
    dir: PathBuf,
}

impl Podman {
    fn new() -> Podman {
        let node = Node::standard();
        let dir = PathBuf::from(format!("/tmp/{}", unique("-podman")));
        for sub in [
            "bin",
            "net.d",
            "root",
            "run",
            "tmp",
            "rootfs/bin",
            "rootfs/www",
        ] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        let podman = Podman { node, dir };
        podman.write_config();
        podman.import_image();
        podman
    }

    fn write_config(&self) {
        let bin = self.dir.join("bin");
        std::os::unix::fs::symlink(common::binary(), bin.join("mycelium-cni"))
            .expect("link plugin");
        for plugin in ["loopback", "portmap"] {
            std::os::unix::fs::symlink(format!("/usr/lib/cni/{plugin}"), bin.join(plugin))
                .expect("link");
        }
        // Rlimits within this host's hard limits: root lacks CAP_SYS_RESOURCE here.
        let conf = format!(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{}\"\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\ntmp_dir = \"{}\"\n",
            bin.display(),
            self.dir.join("net.d").display(),
            self.dir.join("tmp").display()
        );
        std::fs::write(self.dir.join("containers.conf"), conf).expect("write containers.conf");
    }

    /// A local image from busybox-static: no registry is reachable here.
    fn import_image(&self) {
        let rootfs = self.dir.join("rootfs");
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
                .expect("applet link");
        }
        std::fs::write(rootfs.join("www/index.html"), "hello-from-pod\n").expect("index");
        let tar = self.dir.join("rootfs.tar");
        sh(&["tar", "-C", path(&rootfs), "-cf", path(&tar), "."]);
        self.podman(&["import", path(&tar), IMAGE]);
    }

    fn network(&self, name: &str, version: &str, portmap: bool) {
        let mut plugins = vec![
            json!({"type": "loopback"}),
            json!({"type": "mycelium-cni", "myceliumInterface": TUN}),
        ];
        if portmap {
            plugins.push(json!({"type": "portmap", "capabilities": {"portMappings": true}}));
        }
        let conflist = json!({"cniVersion": version, "name": name, "plugins": plugins});
        let file = self.dir.join("net.d").join(format!("{name}.conflist"));
        std::fs::write(file, conflist.to_string()).expect("write conflist");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.node.ns.path()))
            .arg("podman")
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .args([
                "--root",
                path(&self.dir.join("root")),
                "--runroot",
                path(&self.dir.join("run")),
            ])
            .args(["--storage-driver", "vfs"])
            .args(args);
        command
    }

    fn podman(&self, args: &[&str]) -> String {
        let output = self.command(args).output().expect("spawn podman");
        assert!(
            output.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn succeeds(&self, args: &[&str]) -> bool {
        self.command(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn address(&self, container: &str, network: &str) -> String {
        let format = format!("{{{{.NetworkSettings.Networks.{network}.GlobalIPv6Address}}}}");
        self.podman(&["inspect", container, "--format", &format])
    }

    fn run(&self, name: &str, network: &str, extra: &[&str], command: &[&str]) {
        let mut args = vec!["run", "-d", "--name", name, "--network", network];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(command);
        self.podman(&args);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.command(&["rm", "-a", "-f", "-t", "0"]).output();
        let _ = self.command(&["rmi", "-a", "-f"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

const PREFIX: &str = "5fd:a395:1a8d:501d:";

/// Podman 4.3's libcni (Debian 12) knows result versions up to 1.0.0: with a
/// 1.1.0 conflist it refuses our result ("unsupported CNI result version"),
/// so 1.1.0 is covered by the chain tests instead.
#[test]
fn podman_containers_on_every_version() {
    common::require_root();
    let podman = Podman::new();
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let network = format!("mcni{}", version.replace('.', ""));
        podman.network(&network, version, false);
        let (c1, c2) = (format!("{network}-c1"), format!("{network}-c2"));
        podman.run(&c1, &network, &[], &["sleep", "600"]);
        podman.run(&c2, &network, &[], &["sleep", "600"]);
        let (a1, a2) = (podman.address(&c1, &network), podman.address(&c2, &network));
        assert!(
            a1.starts_with(PREFIX) && a2.starts_with(PREFIX),
            "{version}: {a1} {a2}"
        );
        assert_ne!(a1, a2);
        let ping = |from: &str, to: &str| {
            podman.succeeds(&["exec", from, "ping", "-c", "1", "-W", "2", to])
        };
        assert!(ping(&c1, &a2), "{version}: c1 -> c2");
        assert!(ping(&c2, &a1), "{version}: c2 -> c1");
        assert!(ping(&c1, &podman.node.address), "{version}: c1 -> node");
        assert!(podman.node.ns.ping(&a1), "{version}: node -> c1");
        assert_eq!(podman.node.host_veths().len(), 2);

        podman.podman(&["stop", "-t", "0", &c1]);
        assert_eq!(podman.node.host_veths().len(), 1, "{version}: stop ran DEL");
        podman.podman(&["start", &c1]);
        assert_eq!(
            podman.node.host_veths().len(),
            2,
            "{version}: start ran ADD"
        );
        let again = podman.address(&c1, &network);
        assert!(ping(&c1, &a2), "{version}: c1 -> c2 after restart");
        assert!(
            podman.node.ns.ping(&again),
            "{version}: node -> c1 after restart"
        );

        podman.podman(&["rm", "-f", "-t", "0", &c1, &c2]);
        assert!(
            podman.node.host_veths().is_empty(),
            "{version}: rm left veths"
        );
        assert!(
            !podman.node.ns.ip(&["-6", "route"]).contains(":ff0f:"),
            "{version}: rm left routes"
        );
    }
}

#[test]
fn podman_port_mapping_through_portmap() {
    common::require_root();
    let podman = Podman::new();
    podman.network("mcnipm", "1.0.0", true);
    podman.run(
        "web",
        "mcnipm",
        &["-p", "18082:8080"],
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
    );
    let url = format!("http://[{}]:18082/", podman.node.address);
    let mut body = String::new();
    for _ in 0..20 {
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &podman.node.ns.name,
                "curl",
                "-s",
                "-m",
                "2",
                &url,
            ])
            .output()
            .expect("curl");
        body = String::from_utf8_lossy(&output.stdout).into_owned();
        if body.contains("hello-from-pod") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        body.contains("hello-from-pod"),
        "no answer through host port 18082: {body:?}"
    );
    podman.podman(&["rm", "-f", "-t", "0", "web"]);
    let rules = podman.node.ns.run(&["ip6tables-save"]);
    assert!(
        !rules.contains("18082"),
        "portmap rule left after rm: {rules}"
    );
    assert!(podman.node.host_veths().is_empty());
}

/// The DaemonSet image: built offline by podman from conf/Containerfile
/// (FROM scratch, the static binary only), then run as the init container
/// runs: host network, the CNI directories mounted, `install --wait`.
#[test]
fn image_builds_offline_and_installs_like_the_init_container() {
    common::require_root();
    let podman = Podman::new();
    let context = podman.dir.join("context");
    std::fs::create_dir_all(&context).expect("context dir");
    std::fs::copy(common::binary(), context.join("mycelium-cni")).expect("copy binary");
    let containerfile = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/Containerfile");
    let tag = "localhost/mycelium-cni:test";
    podman.podman(&[
        "build",
        "-f",
        containerfile,
        "--build-arg",
        "BINARY=mycelium-cni",
        "-t",
        tag,
        path(&context),
    ]);
    let about = podman.podman(&["run", "--rm", "--network", "none", tag, "--version"]);
    assert!(about.starts_with("mycelium-cni "), "{about}");

    let (bin, conf) = (podman.dir.join("host-bin"), podman.dir.join("host-net.d"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&conf).unwrap();
    let (bin_mount, conf_mount) = (
        format!("{}:/host/cni/bin", bin.display()),
        format!("{}:/host/cni/net.d", conf.display()),
    );
    let report = podman.podman(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-v",
        &bin_mount,
        "-v",
        &conf_mount,
        tag,
        "install",
        "--bin-dir=/host/cni/bin",
        "--conf-dir=/host/cni/net.d",
        &format!("--interface={TUN}"),
        "--wait",
    ]);
    assert!(
        report.contains("wrote /host/cni/net.d/10-mycelium.conflist"),
        "{report}"
    );
    assert!(!report.contains("warning: failed to find"), "{report}");
    assert_eq!(
        std::fs::read(bin.join("mycelium-cni")).unwrap(),
        std::fs::read(common::binary()).unwrap()
    );
    let conflist = std::fs::read_to_string(conf.join("10-mycelium.conflist")).unwrap();
    assert!(conflist.contains(TUN), "{conflist}");
}

/// podman's `--ip6` reaches the plugin as CNI_ARGS `IP=` and gives the
/// container exactly that address; a taken one fails the start with our
/// message.
#[test]
fn podman_ip6_gives_the_requested_address() {
    common::require_root();
    let podman = Podman::new();
    podman.network("mcniip", "1.0.0", false);
    let wanted = format!("{PREFIX}:42");
    podman.run("fixed", "mcniip", &["--ip6", &wanted], &["sleep", "600"]);
    assert_eq!(podman.address("fixed", "mcniip"), wanted);
    assert!(podman.node.ns.ping(&wanted), "node -> {wanted}");
    let output = podman
        .command(&[
            "run",
            "-d",
            "--name",
            "twin",
            "--network",
            "mcniip",
            "--ip6",
            &wanted,
            IMAGE,
            "sleep",
            "600",
        ])
        .output()
        .expect("spawn podman");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a second container got {wanted}");
    assert!(said.contains("is already in use on this node"), "{said}");
    assert_eq!(
        podman.node.host_veths().len(),
        1,
        "the refused start left a veth"
    );
}
