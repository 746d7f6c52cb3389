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
