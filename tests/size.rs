//! The static release binary stays within its byte budget.

const CEILING: u64 = 800_000;

#[test]
fn static_binary_is_small() {
    let path = std::env::var("MYCELIUM_CNI_BIN")
        .expect("MYCELIUM_CNI_BIN must name the static release binary (scripts/test.sh sets it)");
    let size = std::fs::metadata(&path).expect("binary exists").len();
    let header = std::fs::read(&path).expect("readable");
    // ELF, and no PT_INTERP: a static binary asks for no dynamic loader.
    assert_eq!(header.get(..4), Some(&b"\x7fELF"[..]), "{path} is not ELF");
    assert!(
        !header.windows(b"ld-linux".len()).any(|w| w == b"ld-linux"),
        "{path} is dynamic"
    );
    assert!(size <= CEILING, "{path} is {size} bytes, over {CEILING}");
}
