//! The static release binaries stay within their byte budgets: the
//! ceiling for any build, and the targets for x86_64, aarch64 and armv7.

fn check(variable: &str, machine: u16, target: u64) {
    let path = std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} must name a static release binary (scripts/test.sh sets it)")
    });
    let bytes = std::fs::read(&path).expect("binary exists");
    assert_eq!(bytes.get(..4), Some(&b"\x7fELF"[..]), "{path} is not ELF");
    assert_eq!(
        bytes.get(18..20),
        Some(&machine.to_le_bytes()[..]),
        "{path}: wrong machine"
    );
    // A static binary asks for no dynamic loader.
    let interp = b"ld-linux";
    assert!(
        !bytes.windows(interp.len()).any(|w| w == interp),
        "{path} is dynamic"
    );
    let size = bytes.len() as u64;
    assert!(
        size <= 800_000,
        "{path} is {size} bytes, over the 800,000 ceiling"
    );
    assert!(
        size <= target,
        "{path} is {size} bytes, over its {target} target"
    );
}

#[test]
fn x86_64_binary_is_small() {
    check("MYCELIUM_CNI_BIN", 62, 700_000);
}

#[test]
fn aarch64_binary_is_small() {
    check("MYCELIUM_CNI_AARCH64_BIN", 183, 620_000);
}

#[test]
fn armv7_binary_is_small() {
    check("MYCELIUM_CNI_ARMV7_BIN", 40, 520_000);
}
