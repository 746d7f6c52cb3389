//! The operator's side: scripts/install.sh into a temporary root, the
//! `doctor` and `list` commands on a simulated node, and logFile. Root.

mod common;

use common::{Netns, Node, TUN, binary, pod_address, require_root, sh};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn install_script(args: &[&str]) -> (i32, String) {
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
        .args(["--binary", &binary()])
        .args(args)
        .output()
        .expect("run install.sh");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn install_and_uninstall_in_a_temporary_root() {
    let root = std::env::temp_dir().join(common::unique("-root"));
    let root_text = root.to_string_lossy().into_owned();
    for (flags, bin_dir, conf_dir) in [
        (vec![], "opt/cni/bin", "etc/cni/net.d"),
        (
            vec!["--k3s"],
            "var/lib/rancher/k3s/data/cni",
            "var/lib/rancher/k3s/agent/etc/cni/net.d",
        ),
    ] {
        let mut args = vec![
            "--root",
            root_text.as_str(),
            "--interface",
            "myc7",
            "--service-cidr",
            "fd00:10:96::/112",
        ];
        args.extend(&flags);
        let (code, report) = install_script(&args);
        assert_eq!(code, 0, "{report}");
        assert!(
            report.contains("no loopback plugin"),
            "loopback not reported: {report}"
        );
        for kind in ["portmap", "bandwidth"] {
            assert!(
                report.contains(&format!("left out {kind}: no {kind} plugin in")),
                "{kind} left out without saying so: {report}"
            );
        }
        let installed = root.join(bin_dir).join("mycelium-cni");
        assert_eq!(
            std::fs::read(&installed).unwrap(),
            std::fs::read(binary()).unwrap()
        );
        assert_eq!(
            std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let conflist: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join(conf_dir).join("10-mycelium.conflist")).unwrap(),
        )
        .unwrap();
        assert_eq!(conflist["plugins"][0]["type"], "loopback");
        assert_eq!(conflist["plugins"][1]["myceliumInterface"], "myc7");
        assert_eq!(conflist["plugins"][1]["capabilities"]["ips"], true);
        assert_eq!(
            conflist["plugins"].as_array().unwrap().len(),
            2,
            "plugins chained that the bin dir lacks: {conflist}"
        );
        assert_eq!(
            conflist["plugins"][1]["routes"][0]["dst"],
            "fd00:10:96::/112"
        );
        // Only the two files: no temporary left behind.
        assert_eq!(files_under(&root).len(), 2, "{:?}", files_under(&root));

        let mut args = vec!["--root", root_text.as_str(), "--uninstall"];
        args.extend(&flags);
        let (code, report) = install_script(&args);
        assert_eq!(code, 0, "{report}");
        assert!(files_under(&root).is_empty(), "{:?}", files_under(&root));
    }
    let (code, report) = install_script(&["--root", &root_text, "--service-cidr", "10.43.0.0/16"]);
    assert_ne!(code, 0);
    assert!(report.contains("routes[0].dst"), "{report}");
    assert!(
        files_under(&root).is_empty(),
        "a refused install wrote files"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// Runs `mycelium-cni ARGS` inside the node's namespace.
fn human(node: &Node, args: &[&str]) -> (i32, String) {
    let output = Command::new("ip")
        .args(["netns", "exec", &node.ns.name, &binary()])
        .args(args)
        .env_remove("CNI_COMMAND")
        .output()
        .expect("run binary");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn doctor_reports_findings_with_fixes() {
    require_root();
    let node = Node::standard();
    let dir = std::env::temp_dir().join(common::unique("-doc"));
    let (bin_dir, conf_dir) = (dir.join("bin"), dir.join("net.d"));
    let (code, _) = human(
        &node,
        &[
            "install",
            "--bin-dir",
            bin_dir.to_str().unwrap(),
            "--conf-dir",
            conf_dir.to_str().unwrap(),
            "--interface",
            TUN,
        ],
    );
    assert_eq!(code, 0);
    let conf = conf_dir.join("10-mycelium.conflist");
    let args = [
        "doctor",
        "--conf",
        conf.to_str().unwrap(),
        "--bin-dir",
        bin_dir.to_str().unwrap(),
    ];

    let (code, report) = human(&node, &args);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains(&format!(
            "ok    {TUN}: up, overlay address {}",
            node.address
        )),
        "{report}"
    );
    assert!(
        report.contains("pods get 5fd:a395:1a8d:501d::/64"),
        "{report}"
    );
    assert!(
        report.contains("warn  ") && report.contains("loopback is missing"),
        "{report}"
    );
    // No pod yet: the filter table is not there, and ADD will make it.
    assert!(
        report.contains("warn  source filter: table inet mycelium-cni is missing"),
        "{report}"
    );
    let pod = Netns::new("-doc");
    node.add("ctr-doc", &pod, &node.conf("1.0.0")).assert_ok();
    let (code, report) = human(&node, &args);
    assert_eq!(code, 0, "{report}");
    assert!(
        report
            .contains("ok    source filter in force (table inet mycelium-cni), 0 packets dropped"),
        "{report}"
    );

    // Each network's overlayIngress: open warns with the fix; another
    // network's replies is reported in force once a pod made its chain.
    assert!(
        report.contains("warn  network mycelium: overlayIngress open: every node on the Mycelium overlay can reach its pods\n      fix: set \"overlayIngress\": \"replies\""),
        "{report}"
    );
    let replies = serde_json::json!({"cniVersion": "1.0.0", "name": "rep", "plugins": [
        {"type": "mycelium-cni", "myceliumInterface": TUN, "overlayIngress": "replies"}]});
    std::fs::write(conf_dir.join("20-rep.conflist"), replies.to_string()).unwrap();
    let (_, report) = human(&node, &args);
    assert!(
        report.contains("warn  network rep: overlayIngress replies: its chain is missing"),
        "{report}"
    );
    let mut rep_conf = node.conf("1.0.0");
    rep_conf["name"] = "rep".into();
    rep_conf["overlayIngress"] = "replies".into();
    let rep_pod = Netns::new("-doc");
    node.add("ctr-rep", &rep_pod, &rep_conf).assert_ok();
    let (code, report) = human(&node, &args);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains(
            "ok    network rep: overlayIngress replies: in force, 0 unsolicited packets dropped"
        ),
        "{report}"
    );
    // Each network's egress: nat in force once a pod made its chain; the
    // simulated node has no default routes to send it to, and a route
    // inside the IPv4 pool shadows part of it.
    assert!(
        report.contains("ok    network rep: egress nat (IPv4 pool 198.18.0.0/16): NAT in force"),
        "{report}"
    );
    assert!(
        report.contains("warn  network rep: egress nat, but the node has no IPv4 default route"),
        "{report}"
    );
    node.ns.ip(&["route", "add", "198.18.7.0/24", "dev", "lo"]);
    let (code, report) = human(&node, &args);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains(
            "warn  network rep: ipv4Pool 198.18.0.0/16 overlaps the node's route 198.18.7.0/24"
        ),
        "{report}"
    );

    node.ns.ip(&["link", "set", TUN, "down"]);
    let (code, report) = human(&node, &args);
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains(&format!("FAIL  interface {TUN} is down\n      fix: ")),
        "{report}"
    );

    std::fs::write(&conf, "{\"cniVersion\":\"1.0.0\",\"name\":\"x\",\"plugins\":[{\"type\":\"mycelium-cni\",\"mtu\":5}]}").unwrap();
    let (code, report) = human(&node, &args);
    assert_eq!(code, 1);
    assert!(
        report.contains("mtu \"5\" must be 1280 to 65535"),
        "{report}"
    );
    let (code, _) = human(&node, &["doctor", "--bogus"]);
    assert_eq!(code, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn list_shows_every_attachment_from_the_kernel() {
    require_root();
    let node = Node::standard();
    let pods: Vec<Netns> = (0..3).map(|_| Netns::new("-ls")).collect();
    let mut addresses = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        addresses.push(pod_address(
            &node
                .add(&format!("ctr-list-{i}"), pod, &node.conf("1.0.0"))
                .assert_ok(),
        ));
    }
    let (code, table) = human(&node, &["list", "--interface", TUN]);
    assert_eq!(code, 0, "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NETWORK") && lines[0].contains("HOST-VETH"),
        "{table}"
    );
    // Three attachments, then the source filter's state and drop counter,
    // then its fast path (an IPv6 and an IPv4 element per pod).
    assert_eq!(lines.len(), 6, "{table}");
    assert!(
        lines[4].starts_with("source filter: in force") && lines[4].contains("0 packets dropped"),
        "{table}"
    );
    assert_eq!(
        lines[5], "fast path: 6 elements, 0 stale, 0 pod addresses on the slow path",
        "{table}"
    );
    for (i, address) in addresses.iter().enumerate() {
        let row = lines
            .iter()
            .find(|l| l.contains(&format!("ctr-list-{i} ")))
            .expect("row");
        assert!(
            row.starts_with("mycnet") && row.contains(" eth0 ") && row.contains(address.as_str()),
            "{row}"
        );
        assert!(
            row.contains(" 198.18."),
            "the pod's IPv4 (egress nat): {row}"
        );
    }
}

#[test]
fn log_file_gets_one_line_per_command_and_never_blocks_it() {
    require_root();
    let node = Node::standard();
    let dir = std::env::temp_dir().join(common::unique("-log"));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("mycelium-cni.log");
    let mut conf = node.conf("1.0.0");
    conf["logFile"] = log.to_string_lossy().into_owned().into();
    let pod = Netns::new("-log");
    let outcome = node.add("ctr-log", &pod, &conf);
    outcome.assert_ok();
    assert!(!outcome.stdout.contains("ms\n"), "log line on stdout");
    node.del("ctr-log", &pod.path(), &conf).assert_ok();
    node.ns.ip(&["link", "set", TUN, "down"]);
    node.add("ctr-log2", &pod, &conf).error(11);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains(" ADD mycnet/ctr-log/eth0 ok ") && lines[0].ends_with("ms"),
        "{text}"
    );
    assert!(lines[1].contains(" DEL mycnet/ctr-log/eth0 ok "), "{text}");
    assert!(
        lines[2].contains(" ADD mycnet/ctr-log2/eth0 error 11: interface mctun0 is down "),
        "{text}"
    );

    // logLevel error: successes are not logged.
    node.ns.ip(&["link", "set", TUN, "up"]);
    sh(&[
        "ip",
        "-n",
        &node.ns.name,
        "-6",
        "addr",
        "replace",
        &format!("{}/7", node.address),
        "dev",
        TUN,
    ]);
    conf["logLevel"] = "error".into();
    node.add("ctr-log3", &Netns::new("-log3"), &conf)
        .assert_ok();
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 3);

    // A log file in a missing directory costs the line, not the command.
    conf["logFile"] = dir
        .join("missing/dir/x.log")
        .to_string_lossy()
        .into_owned()
        .into();
    conf["logLevel"] = "info".into();
    node.add("ctr-log4", &Netns::new("-log4"), &conf)
        .assert_ok();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `mycelium-cni install --bin-dir B --conf-dir C ARGS`, from the host.
fn install_into(bin_dir: &Path, conf_dir: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(binary())
        .arg("install")
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--conf-dir")
        .arg(conf_dir)
        .args(["--interface", TUN])
        .args(args)
        .env_remove("CNI_COMMAND")
        .output()
        .expect("run install");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn chain_of(conf_dir: &Path) -> Vec<String> {
    let text = std::fs::read(conf_dir.join("10-mycelium.conflist")).expect("conflist");
    let list: serde_json::Value = serde_json::from_slice(&text).expect("conflist JSON");
    let plugins = list["plugins"].as_array().expect("plugins").iter();
    plugins
        .map(|p| p["type"].as_str().unwrap_or("").to_string())
        .collect()
}

/// install chains portmap and bandwidth when the bin dir has them (as
/// k3s's has), leaves them out and says so when it has not or when told,
/// and doctor warns about a conflist without portmap and about a chained
/// plugin missing from the bin dir.
#[test]
fn install_chains_portmap_and_bandwidth_when_present() {
    require_root();
    let dir = std::env::temp_dir().join(common::unique("-chain"));
    let (bin_dir, conf_dir) = (dir.join("bin"), dir.join("net.d"));
    std::fs::create_dir_all(&bin_dir).unwrap();

    let (code, report) = install_into(&bin_dir, &conf_dir, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(chain_of(&conf_dir), ["loopback", "mycelium-cni"], "absent");
    for kind in ["portmap", "bandwidth"] {
        assert!(
            report.contains(&format!(
                "warning: left out {kind}: no {kind} plugin in {}",
                bin_dir.display()
            )),
            "absent {kind} not reported: {report}"
        );
    }
    assert!(
        report.contains("hostPort (and with it k3s's ServiceLB"),
        "{report}"
    );

    for kind in ["loopback", "portmap", "bandwidth"] {
        std::os::unix::fs::symlink(format!("/usr/lib/cni/{kind}"), bin_dir.join(kind)).unwrap();
    }
    let (code, report) = install_into(&bin_dir, &conf_dir, &[]);
    assert_eq!(code, 0, "{report}");
    let full = ["loopback", "mycelium-cni", "portmap", "bandwidth"];
    assert_eq!(chain_of(&conf_dir), full, "present: {report}");
    assert!(report.contains("chained portmap: hostPort"), "{report}");
    assert!(
        report.contains("chained bandwidth: the kubernetes.io/ingress-bandwidth"),
        "{report}"
    );
    let text = std::fs::read_to_string(conf_dir.join("10-mycelium.conflist")).unwrap();
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["plugins"][2]["capabilities"]["portMappings"], true);
    assert_eq!(list["plugins"][3]["capabilities"]["bandwidth"], true);
    // The shipped example conflist is the same chain.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/10-mycelium.conflist"
    ))
    .unwrap();
    let example: serde_json::Value = serde_json::from_str(&example).unwrap();
    for i in 1..4 {
        assert_eq!(
            example["plugins"][i]["capabilities"], list["plugins"][i]["capabilities"],
            "example plugin {i}"
        );
    }

    let (code, report) = install_into(&bin_dir, &conf_dir, &["--no-portmap"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        chain_of(&conf_dir),
        ["loopback", "mycelium-cni", "bandwidth"]
    );
    assert!(
        report.contains("left out portmap (--no-portmap): hostPort"),
        "{report}"
    );
    let (code, _) = install_into(&bin_dir, &conf_dir, &["--no-portmap", "--no-bandwidth"]);
    assert_eq!(code, 0);
    assert_eq!(chain_of(&conf_dir), ["loopback", "mycelium-cni"]);

    // doctor: no portmap in the conflist is a warning with the fix.
    let node = Node::standard();
    let conf = conf_dir.join("10-mycelium.conflist");
    let doctor = [
        "doctor",
        "--conf",
        conf.to_str().unwrap(),
        "--bin-dir",
        bin_dir.to_str().unwrap(),
    ];
    let (code, report) = human(&node, &doctor);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("warn  conflist has no portmap: hostPort does nothing, so k3s's ServiceLB")
            && report.contains("fix: run mycelium-cni install (it chains portmap"),
        "{report}"
    );
    install_into(&bin_dir, &conf_dir, &[]);
    let (_, report) = human(&node, &doctor);
    assert!(!report.contains("no portmap"), "{report}");
    assert!(!report.contains("conflist names"), "{report}");
    // A chained plugin gone from the bin dir is named.
    std::fs::remove_file(bin_dir.join("bandwidth")).unwrap();
    let (_, report) = human(&node, &doctor);
    assert!(
        report.contains(&format!(
            "warn  conflist names bandwidth, but {}/bandwidth is missing",
            bin_dir.display()
        )),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_subcommand_prints_its_help_and_exits_0() {
    for command in ["install", "uninstall", "doctor", "list"] {
        for flag in ["--help", "-h"] {
            let output = Command::new(binary())
                .args([command, flag])
                .env_remove("CNI_COMMAND")
                .output()
                .expect("run binary");
            let text = String::from_utf8_lossy(&output.stdout);
            assert_eq!(output.status.code(), Some(0), "{command} {flag}: {text}");
            assert!(
                text.starts_with(&format!("usage: mycelium-cni {command}")),
                "{command} {flag}: {text}"
            );
        }
    }
    let (code, text) = install_script(&["--help"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("--no-portmap"), "{text}");
}

/// The node's /64 changes (its Mycelium key did): list marks the pods
/// attached before, doctor fails with their count, CHECK names both
/// prefixes, and new pods get the new /64.
#[test]
fn a_node_whose_64_changed() {
    require_root();
    let node = Node::standard();
    let conf = node.conf("1.0.0");
    let pods: Vec<Netns> = (0..2).map(|_| Netns::new("-pfx")).collect();
    let results: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| node.add(&format!("ctr-old{i}"), pod, &conf).assert_ok())
        .collect();
    let doctor = ["doctor", "--interface", TUN, "--conf", "/nonexistent"];
    let (_, report) = human(&node, &doctor);
    assert!(
        report.contains("ok    2 attachment(s), all in 5fd:a395:1a8d:501d::/64"),
        "{report}"
    );

    node.ns.ip(&["-6", "addr", "flush", "dev", TUN]);
    node.ns
        .ip(&["-6", "addr", "add", "4aa:1:2:3::1/7", "dev", TUN]);

    let (code, table) = human(&node, &["list", "--interface", TUN]);
    assert_eq!(code, 0, "{table}");
    let marked: Vec<&str> = table
        .lines()
        .filter(|l| l.ends_with("OUTSIDE NODE /64"))
        .collect();
    assert_eq!(marked.len(), 2, "{table}");
    assert!(
        table.contains("2 attachment(s) outside the node's /64 4aa:1:2:3::/64 (mctun0)")
            && table.contains("restart those pods"),
        "{table}"
    );

    let (code, report) = human(&node, &doctor);
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("FAIL  2 attachment(s) have addresses outside the node's /64 4aa:1:2:3::/64 (they are in 5fd:a395:1a8d:501d::/64)")
            && report.contains("fix: restart those pods"),
        "{report}"
    );

    let msg = node
        .check("ctr-old0", &pods[0], &results[0], "1.0.0")
        .error(102);
    assert!(
        msg.contains("it is in 5fd:a395:1a8d:501d::/64, and the node now holds 4aa:1:2:3::/64"),
        "{msg}"
    );

    let new_pod = Netns::new("-pfx");
    let fresh = pod_address(&node.add("ctr-new", &new_pod, &conf).assert_ok());
    assert!(fresh.starts_with("4aa:1:2:3:ff0f:"), "{fresh}");
    let (_, table) = human(&node, &["list", "--interface", TUN]);
    let new_row = table.lines().find(|l| l.contains("ctr-new")).expect("row");
    assert!(!new_row.contains("OUTSIDE"), "{table}");
    let (_, report) = human(&node, &doctor);
    assert!(report.contains("FAIL  2 attachment(s)"), "{report}");

    // Restarting those pods (DEL, then ADD) clears the failure.
    for (i, pod) in pods.iter().enumerate() {
        node.del(&format!("ctr-old{i}"), &pod.path(), &conf)
            .assert_ok();
        node.add(&format!("ctr-old{i}"), pod, &conf).assert_ok();
    }
    let (code, report) = human(&node, &doctor);
    assert!(
        report.contains("ok    3 attachment(s), all in 4aa:1:2:3::/64"),
        "{report}"
    );
    assert!(!report.contains("outside the node"), "{code}: {report}");
}

/// Two 400::/7 routes (a second Mycelium daemon's TUN): doctor warns.
#[test]
fn doctor_warns_about_a_second_overlay_route() {
    require_root();
    let node = Node::standard();
    let doctor = ["doctor", "--interface", TUN, "--conf", "/nonexistent"];
    let (_, report) = human(&node, &doctor);
    assert!(!report.contains("routes for 400::/7"), "{report}");
    node.ns
        .ip(&["tuntap", "add", "dev", "mctun1", "mode", "tun"]);
    node.ns.ip(&["link", "set", "mctun1", "up"]);
    node.ns
        .ip(&["-6", "addr", "add", "4aa:1:2:3::1/7", "dev", "mctun1"]);
    let (_, report) = human(&node, &doctor);
    assert!(
        report.contains(
            "warn  2 routes for 400::/7 (dev mctun0, dev mctun1): a second Mycelium daemon?"
        ) && report.contains("fix: stop the other daemon"),
        "{report}"
    );
}
