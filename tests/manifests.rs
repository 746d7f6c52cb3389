//! The DaemonSet manifests validate against the Kubernetes schemas (strict:
//! no unknown fields), and the validator does reject a broken one. Needs
//! kubernetes-validate (scripts/test.sh installs it into target/venv and
//! sets MYCELIUM_CNI_K8S_VALIDATE).

use std::process::Command;

const KUBERNETES: &str = "1.33.0";

fn validate(files: &[&str]) -> (bool, String) {
    let validator = std::env::var("MYCELIUM_CNI_K8S_VALIDATE").expect(
        "MYCELIUM_CNI_K8S_VALIDATE must name kubernetes-validate (scripts/test.sh sets it)",
    );
    let output = Command::new(validator)
        .args(["-k", KUBERNETES, "--strict"])
        .args(files)
        .output()
        .expect("run kubernetes-validate");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

fn manifest(path: &str) -> String {
    format!("{}/conf/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn daemonsets_validate_strictly() {
    for path in ["kubernetes/mycelium-cni.yaml", "k3s/mycelium-cni.yaml"] {
        let file = manifest(path);
        let (ok, text) = validate(&[&file]);
        assert!(ok, "{path}: {text}");
        assert!(
            text.contains("passed for resource daemonset/mycelium-cni"),
            "{text}"
        );
    }
}

#[test]
fn validator_rejects_an_unknown_field() {
    let text = std::fs::read_to_string(manifest("kubernetes/mycelium-cni.yaml")).unwrap();
    let broken = text.replace(
        "hostNetwork: true",
        "hostNetwork: true\n      hostNetworking: true",
    );
    let path = std::env::temp_dir().join(format!("mcni-broken-{}.yaml", std::process::id()));
    std::fs::write(&path, broken).unwrap();
    let (ok, text) = validate(&[path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert!(!ok && text.contains("hostNetworking"), "{text}");
}

#[test]
fn k3s_manifest_differs_only_in_paths_and_pause_image() {
    let plain = std::fs::read_to_string(manifest("kubernetes/mycelium-cni.yaml")).unwrap();
    let k3s = std::fs::read_to_string(manifest("k3s/mycelium-cni.yaml")).unwrap();
    let body = |text: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (plain, k3s) = (body(&plain), body(&k3s));
    assert_eq!(plain.len(), k3s.len());
    let differing: Vec<_> = plain
        .iter()
        .zip(&k3s)
        .filter(|(a, b)| a != b)
        .map(|(_, b)| b.trim())
        .collect();
    assert_eq!(
        differing,
        [
            "image: rancher/mirrored-pause:3.6",
            "path: /var/lib/rancher/k3s/data/cni",
            "path: /var/lib/rancher/k3s/agent/etc/cni/net.d",
        ]
    );
}
