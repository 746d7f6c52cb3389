//! One build path: the binary in each release archive (scripts/release.sh)
//! is byte for byte the plain `cargo build --release --target T` that the
//! tests run. MYCELIUM_CNI_DIST names the archives' directory
//! (scripts/test.sh runs release.sh first).

mod common;

use common::sh;

fn archived_binary(arch: &str) -> Vec<u8> {
    let dist = std::env::var("MYCELIUM_CNI_DIST")
        .expect("MYCELIUM_CNI_DIST must name target/dist (scripts/test.sh sets it)");
    let version = env!("CARGO_PKG_VERSION");
    let archive = format!("{dist}/mycelium-cni-linux-{arch}-v{version}.tgz");
    let listing = sh(&["tar", "-tzf", &archive]);
    assert!(listing.lines().any(|l| l == "mycelium-cni"), "{listing}");
    let checksum = std::fs::read_to_string(format!("{archive}.sha256")).expect("sha256 file");
    let digest = sh(&["sha256sum", &archive]);
    assert_eq!(
        checksum.split(' ').next(),
        digest.split(' ').next(),
        "{archive}"
    );
    let output = std::process::Command::new("tar")
        .args(["-xzOf", &archive, "mycelium-cni"])
        .output()
        .expect("tar");
    assert!(output.status.success());
    output.stdout
}

#[test]
fn release_archives_hold_the_plain_cargo_builds() {
    for (arch, variable) in [
        ("amd64", "MYCELIUM_CNI_BIN"),
        ("arm64", "MYCELIUM_CNI_AARCH64_BIN"),
        ("arm", "MYCELIUM_CNI_ARMV7_BIN"),
    ] {
        let built = std::fs::read(std::env::var(variable).expect(variable)).expect("binary");
        assert!(
            archived_binary(arch) == built,
            "{arch}: archive differs from {variable}"
        );
    }
}

/// A blob of the image's OCI archive, by digest (`sha256:...`).
fn blob(archive: &str, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let output = std::process::Command::new("tar")
        .args(["-xOf", archive, &format!("blobs/sha256/{hex}")])
        .output()
        .expect("tar");
    assert!(output.status.success(), "{digest} missing from {archive}");
    let digest_of = sh(&[
        "sh",
        "-c",
        &format!("tar -xOf {archive} blobs/sha256/{hex} | sha256sum"),
    ]);
    assert!(
        digest_of.starts_with(hex),
        "blob {hex} does not match its digest"
    );
    output.stdout
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("JSON")
}

/// The binary in an image's single layer (gzip or plain tar).
fn binary_in_layer(layer: &[u8]) -> Vec<u8> {
    let dir = std::env::temp_dir().join(common::unique("-layer"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("layer");
    std::fs::write(&path, layer).unwrap();
    let output = std::process::Command::new("tar")
        .args(["-xaOf", path.to_str().unwrap(), "mycelium-cni"])
        .output()
        .expect("tar");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "no mycelium-cni in the layer");
    output.stdout
}

/// ELF e_machine: x86-64 62, AArch64 183, ARM 40 (EM_* in elf.h).
fn elf_machine(binary: &[u8]) -> u16 {
    assert_eq!(binary.get(..4), Some(&b"\x7fELF"[..]), "not an ELF file");
    u16::from_le_bytes([binary[18], binary[19]])
}

/// The DaemonSet image (release.sh: conf/Containerfile, built by podman):
/// one image index with linux/amd64, linux/arm64 and linux/arm/v7, each
/// image holding its own architecture's binary, the one the tests run.
#[test]
fn image_index_holds_each_architectures_binary() {
    let dist = std::env::var("MYCELIUM_CNI_DIST").expect("MYCELIUM_CNI_DIST");
    let archive = format!(
        "{dist}/mycelium-cni-image-v{}.tar",
        env!("CARGO_PKG_VERSION")
    );
    let checksum = std::fs::read_to_string(format!("{archive}.sha256")).expect("sha256 file");
    assert!(sh(&["sha256sum", &archive]).starts_with(checksum.split(' ').next().unwrap()));
    let top = json(&sh(&["tar", "-xOf", &archive, "index.json"]).into_bytes());
    let entry = &top["manifests"][0];
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let index = json(&blob(&archive, entry["digest"].as_str().unwrap()));
    let mut platforms = Vec::new();
    for manifest in index["manifests"].as_array().expect("manifests") {
        let platform = &manifest["platform"];
        let name = format!(
            "{}/{}{}",
            platform["os"].as_str().unwrap(),
            platform["architecture"].as_str().unwrap(),
            platform["variant"]
                .as_str()
                .map(|v| format!("/{v}"))
                .unwrap_or_default()
        );
        let image = json(&blob(&archive, manifest["digest"].as_str().unwrap()));
        let layers = image["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 1, "{name}: one layer");
        let binary = binary_in_layer(&blob(&archive, layers[0]["digest"].as_str().unwrap()));
        let (machine, variable) = match name.as_str() {
            "linux/amd64" => (62, "MYCELIUM_CNI_BIN"),
            "linux/arm64" => (183, "MYCELIUM_CNI_AARCH64_BIN"),
            "linux/arm/v7" => (40, "MYCELIUM_CNI_ARMV7_BIN"),
            other => panic!("unexpected platform {other}"),
        };
        assert_eq!(elf_machine(&binary), machine, "{name}: ELF machine");
        let built = std::fs::read(std::env::var(variable).expect(variable)).expect("binary");
        assert!(
            binary == built,
            "{name}: image binary differs from {variable}"
        );
        let config = json(&blob(&archive, image["config"]["digest"].as_str().unwrap()));
        assert_eq!(config["config"]["Entrypoint"][0], "/mycelium-cni", "{name}");
        platforms.push(name);
    }
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm/v7", "linux/arm64"]);
}
