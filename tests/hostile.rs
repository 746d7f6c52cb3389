//! What a hostile runtime, config or pod must not break (issue 22): one
//! named test per defect, driving the release binary like a runtime. Root.

mod common;

use common::{Netns, Node, Outcome, TUN, binary, hooks_binary, pod_address, require_root};
use serde_json::{Value, json};
use std::process::Command;

/// The only JSON document on stdout, or a panic naming what else is there.
fn one_document(outcome: &Outcome, context: &str) -> Value {
    let mut documents = serde_json::Deserializer::from_str(&outcome.stdout).into_iter::<Value>();
    let first = documents.next();
    let rest = documents.next();
    match (first, rest) {
        (Some(Ok(document)), None) => document,
        _ => panic!(
            "{context}: stdout is not exactly one JSON document: {:?} (stderr: {})",
            outcome.stdout, outcome.stderr
        ),
    }
}

/// A malformed prevResult is refused before ADD creates anything: node and
/// pod are as before, and the next ADD (with a good config) works.
#[test]
fn failed_add_leaves_no_wired_pod_and_a_retry_works() {
    require_root();
    let node = Node::standard();
    let pod = Netns::new("-prev");
    let mut conf = node.conf("1.1.0");
    conf["name"] = "net1".into();
    let (node_before, pod_before) = (node.ns.state(), pod.state());
    for (prev, msg) in [
        (json!({"ips": {}}), "invalid prevResult: ips is not a list"),
        (json!([]), "invalid prevResult: not an object"),
        (json!("x"), "invalid prevResult: not an object"),
        (
            json!({"interfaces": {}}),
            "invalid prevResult: interfaces is not a list",
        ),
        (
            json!({"routes": 7}),
            "invalid prevResult: routes is not a list",
        ),
    ] {
        let mut bad = conf.clone();
        bad["prevResult"] = prev.clone();
        let outcome = node.add("c1", &pod, &bad);
        assert_eq!(outcome.error(7), msg, "prevResult {prev}");
        assert_eq!(node.ns.state(), node_before, "{prev}: the node changed");
        assert_eq!(pod.state(), pod_before, "{prev}: the pod changed");
        assert!(node.host_veths().is_empty(), "{prev}: a host veth was made");
    }
    let result = node.add("c1", &pod, &conf).assert_ok();
    let address = pod_address(&result);
    assert!(pod.ping(&node.address), "the retried ADD's pod is wired");
    assert!(node.ns.ping(&address), "the node reaches the retried pod");
    node.del("c1", &pod.path(), &conf).assert_ok();
}

/// A failure after ADD created the host veth (here: a route the pod
/// already has) undoes all of this ADD, and the retried ADD works.
#[test]
fn failure_after_creation_undoes_this_add() {
    require_root();
    let node = Node::standard();
    let pod = Netns::new("-undo");
    pod.ip(&["link", "set", "lo", "up"]);
    pod.ip(&["-6", "route", "add", "fd00:10:96::/112", "dev", "lo"]);
    let mut conf = node.conf("1.1.0");
    conf["routes"] = json!([{"dst": "fd00:10:96::/112"}]);
    let (node_before, pod_before) = (node.ns.state(), pod.state());
    let msg = node.add("c1", &pod, &conf).error(5);
    assert!(
        msg.starts_with("add route fd00:10:96::/112 via fe80::1 in pod"),
        "{msg}"
    );
    assert_eq!(
        node.ns.state(),
        node_before,
        "the node kept part of the ADD"
    );
    assert_eq!(pod.state(), pod_before, "the pod kept part of the ADD");
    pod.ip(&["-6", "route", "del", "fd00:10:96::/112", "dev", "lo"]);
    let result = node.add("c1", &pod, &conf).assert_ok();
    assert!(pod.ping(&node.address), "the retried ADD's pod is wired");
    assert!(node.ns.ping(&pod_address(&result)));
    node.del("c1", &pod.path(), &conf).assert_ok();
}

/// A FIFO without a reader, a symbolic link, a directory and /dev/stdout as
/// `logFile`: ADD, CHECK and DEL each finish with stdout as the spec has
/// it, the line is skipped with one line on stderr, and the link's target
/// is not written.
#[test]
fn log_file_that_is_not_a_regular_file_costs_only_the_line() {
    require_root();
    let node = Node::standard();
    let dir = std::env::temp_dir().join(common::unique("-logs"));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    common::sh(&["mkfifo", fifo.to_str().unwrap()]);
    let target = dir.join("target.log");
    std::fs::write(&target, "").unwrap();
    let link = dir.join("link.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let paths = [
        fifo.to_str().unwrap(),
        link.to_str().unwrap(),
        dir.to_str().unwrap(),
        "/dev/stdout",
    ];
    for (i, path) in paths.into_iter().enumerate() {
        let pod = Netns::new("-log");
        let container = format!("ctr-log-{i}");
        let mut conf = node.conf("1.1.0");
        conf["logFile"] = path.into();
        let run = |command: &str, conf: &Value| {
            let outcome = node.cni(command, &container, &pod.path(), "eth0", conf);
            assert_ne!(outcome.code, 124, "{command} with logFile {path} hung");
            assert_eq!(
                outcome.code, 0,
                "{command} with logFile {path}: {} {}",
                outcome.stdout, outcome.stderr
            );
            let skipped: Vec<&str> = outcome
                .stderr
                .lines()
                .filter(|line| line.contains("logFile"))
                .collect();
            assert_eq!(
                skipped.len(),
                1,
                "{command} with logFile {path}: stderr {:?}",
                outcome.stderr
            );
            outcome
        };
        let added = run("ADD", &conf);
        let result = one_document(&added, &format!("ADD with logFile {path}"));
        assert!(pod.ping(&node.address), "logFile {path}: pod not wired");
        let mut check = conf.clone();
        check["prevResult"] = result;
        let checked = run("CHECK", &check);
        assert_eq!(checked.stdout, "", "CHECK with logFile {path}");
        let deleted = run("DEL", &check);
        assert_eq!(deleted.stdout, "", "DEL with logFile {path}");
    }
    let written = std::fs::read_to_string(&target).unwrap();
    assert_eq!(written, "", "the symbolic link was followed");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `doctor --conf` on /dev/zero and on a FIFO without a writer finishes
/// at once with a FAIL line for the conflist.
#[test]
fn doctor_conf_reads_a_bounded_regular_file_only() {
    require_root();
    let node = Node::standard();
    let dir = std::env::temp_dir().join(common::unique("-doc"));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("10-mycelium.conflist");
    common::sh(&["mkfifo", fifo.to_str().unwrap()]);
    let big = dir.join("big.conflist");
    std::fs::write(&big, vec![b' '; (4 << 20) + 1]).unwrap();
    for (path, said) in [
        ("/dev/zero", "is a device, not a regular file"),
        (fifo.to_str().unwrap(), "is a FIFO, not a regular file"),
        (big.to_str().unwrap(), "is larger than 4194304 bytes"),
    ] {
        // Bounded in time and memory: doctor once read /dev/zero into a
        // buffer without end, and waited for a FIFO's writer.
        let output = Command::new("timeout")
            .args(["10", "prlimit", "--as=1073741824", "--"])
            .args(["ip", "netns", "exec", &node.ns.name, &binary()])
            .args(["doctor", "--interface", TUN, "--conf", path])
            .output()
            .expect("spawn");
        let code = output.status.code().unwrap_or(-1);
        assert_ne!(code, 124, "doctor --conf {path} hung");
        assert_eq!(code, 1, "doctor --conf {path}: a FAIL is exit 1");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = format!("conflist {path}: {said}");
        assert!(
            stdout
                .lines()
                .any(|l| l.contains("FAIL") && l.contains(&line)),
            "doctor --conf {path}: no {line:?} in {stdout}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// MYCELIUM_CNI_TEST_HASH_BITS is obeyed by the tests' build only: with 1
/// bit, names are myc00000000000[01] and addresses end in ff0f::[01].
#[test]
fn release_binary_has_no_hash_bits_knob() {
    require_root();
    let knob = [("MYCELIUM_CNI_TEST_HASH_BITS", "1")];
    let one_bit_names = ["myc000000000000", "myc000000000001"];
    let release = Node::standard();
    let pod = Netns::new("-knob");
    let conf = release.conf("1.0.0");
    let result = release
        .cni_with(&knob, "ADD", "ctr-knob", &pod.path(), "eth0", &conf)
        .assert_ok();
    let veth = result["interfaces"][0]["name"].as_str().unwrap_or_default();
    assert!(
        !one_bit_names.contains(&veth),
        "the release binary obeyed the knob: {veth}"
    );
    assert!(!pod_address(&result).ends_with(":ff0f:0:0:1"), "{result}");
    release.del("ctr-knob", &pod.path(), &conf).assert_ok();

    // The tests' build does obey it: the tests that force collisions work.
    let hooked = Node::standard().with_test_hooks();
    assert_ne!(
        hooks_binary(),
        binary(),
        "the hooks build is the release binary"
    );
    let pod = Netns::new("-knob");
    let result = hooked
        .cni_with(&knob, "ADD", "ctr-knob", &pod.path(), "eth0", &conf)
        .assert_ok();
    let veth = result["interfaces"][0]["name"].as_str().unwrap_or_default();
    assert!(
        one_bit_names.contains(&veth),
        "the hooks build ignored the knob: {veth}"
    );
    hooked.del("ctr-knob", &pod.path(), &conf).assert_ok();
}

/// GC deletes a stale attachment, and leaves every veth lacking one of our
/// marks. The foreign veths are made by ADD, then each loses one mark: its
/// name's shape, its alias's shape, its group. (Kind veth is checked by the
/// unit tests: this kernel has no other kind to put in our group with ip.)
#[test]
fn gc_touches_only_veths_with_every_mark() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.1.0");
    let (keep, stale) = (Netns::new("-gck"), Netns::new("-gcs"));
    node.add("keep", &keep, &conf).assert_ok();
    node.add("stale", &stale, &conf).assert_ok();
    let unmarks: [(&str, &[&str]); 3] = [
        ("renamed", &["name", "mycforeign0"]),
        ("bad alias", &["alias", "mycnet/-f/eth0"]),
        ("group 0", &["group", "default"]),
    ];
    let mut foreign = Vec::new();
    for (i, (what, change)) in unmarks.into_iter().enumerate() {
        let pod = Netns::new("-gcf");
        let result = node.add(&format!("foreign-{i}"), &pod, &conf).assert_ok();
        let veth = result["interfaces"][0]["name"]
            .as_str()
            .unwrap()
            .to_string();
        node.ns.ip(&["link", "set", "dev", &veth, "down"]);
        let mut set = vec!["link", "set", "dev", veth.as_str()];
        set.extend_from_slice(change);
        node.ns.ip(&set);
        let name = if change[0] == "name" {
            change[1]
        } else {
            &veth
        };
        foreign.push((what, name.to_string(), pod));
    }
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    let outcome = node.run(&[("CNI_COMMAND", "GC")], &gc.to_string());
    assert_eq!(outcome.code, 0, "{} {}", outcome.stdout, outcome.stderr);
    let links = node.ns.ip(&["-o", "link", "show"]);
    for (what, name, _) in &foreign {
        assert!(
            links.contains(&format!(": {name}@")),
            "GC deleted {name} ({what}): {links}"
        );
    }
    assert!(
        !stale.ip(&["link"]).contains("eth0"),
        "GC left the stale pod"
    );
    assert!(keep.ping(&node.address), "GC broke the kept pod");
}

/// A network name longer than `overlay-in-NAME` can hold (255 bytes) is
/// refused with code 7 by every command, before anything is made; the
/// longest allowed one works end to end.
#[test]
fn network_names_fit_every_derived_object() {
    require_root();
    let node = Node::standard();
    let pod = Netns::new("-long");
    let named = |length: usize| {
        let mut conf = node.conf("1.1.0");
        conf["name"] = "n".repeat(length).into();
        conf["overlayIngress"] = "replies".into();
        conf["cni.dev/valid-attachments"] = json!([]);
        conf
    };
    let node_before = node.ns.state();
    for length in [245, 248] {
        let conf = named(length);
        let expected =
            format!("invalid config: name is {length} bytes long; it must be at most 244");
        assert_eq!(
            node.add("c1", &pod, &conf).error(7),
            expected,
            "ADD {length}"
        );
        for command in ["STATUS", "GC"] {
            let outcome = node.run(&[("CNI_COMMAND", command)], &conf.to_string());
            assert_eq!(outcome.error(7), expected, "{command} {length}");
        }
        assert_eq!(node.ns.state(), node_before, "{length}: the node changed");
    }
    let longest = named(244);
    node.add("c1", &pod, &longest).assert_ok();
    assert!(pod.ping(&node.address), "the longest name's pod is wired");
    let chains = node.ns.run(&["nft", "list", "chains"]);
    assert!(
        chains.contains(&format!("overlay-in-{}", "n".repeat(244))),
        "{chains}"
    );
    node.del("c1", &pod.path(), &longest).assert_ok();
}

/// The minor ones: `%` in CNI_IFNAME is code 4; an empty CNI_COMMAND is
/// code 4 with one JSON document; a fractional mtu and a bad overlayIngress
/// entry are named plainly.
#[test]
fn runtime_and_config_mistakes_get_plain_codes_and_messages() {
    require_root();
    let node = Node::standard();
    let pod = Netns::new("-minor");
    let conf = node.conf("1.1.0");
    let msg = node.cni("ADD", "c1", &pod.path(), "eth%d", &conf).error(4);
    assert!(msg.starts_with("invalid CNI_IFNAME \"eth%d\""), "{msg}");

    let empty = node.run(&[("CNI_COMMAND", "")], &conf.to_string());
    let document = one_document(&empty, "empty CNI_COMMAND");
    assert_eq!(document["code"], 4, "{document}");
    assert_eq!(document["msg"], "CNI_COMMAND is empty");
    assert_eq!(empty.code, 1);

    let mut fractional = conf.clone();
    fractional["mtu"] = json!(1400.5);
    let msg = node.add("c1", &pod, &fractional).error(7);
    assert_eq!(msg, "invalid config: mtu \"1400.5\" must be 1280 to 65535");

    let mut listed = conf.clone();
    listed["overlayIngress"] = json!(["4aa::/64", "10.0.0.0/8"]);
    let msg = node.add("c1", &pod, &listed).error(7);
    assert!(
        msg.contains("overlayIngress[1] \"10.0.0.0/8\" must"),
        "{msg}"
    );
    assert!(!msg.contains("\\\""), "quoted twice: {msg}");
    assert!(node.host_veths().is_empty());
}
