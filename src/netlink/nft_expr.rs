//! nf_tables rule expressions, built in the attribute order the kernel
//! dumps them (`nft --debug=netlink` shows the same), so that a rule read
//! back compares equal to the one built here. Integers inside expression
//! attributes are big-endian; register contents are compared as bytes.

use super::attrs::Body;
use super::reply::Attrs;

/// Registers as nft uses them: 16-byte register 1, and the verdict register.
const NFT_REG_VERDICT: u32 = libc::NFT_REG_VERDICT as u32;
const NFT_REG_1: u32 = libc::NFT_REG_1 as u32;
/// The 16-byte register after register 1, where a 4-byte value follows a
/// 16-byte one in a concatenation (`ip6 saddr . meta iif`).
pub const NFT_REG_2: u32 = libc::NFT_REG_2 as u32;
/// The 4-byte register after the first 4 bytes of register 1, where a
/// 4-byte value follows a 4-byte one (`ip saddr . meta iif`).
pub const NFT_REG32_01: u32 = libc::NFT_REG32_01 as u32;
/// NFT_BITWISE_MASK_XOR (formerly BOOL): `reg = (reg & mask) ^ xor`.
const NFT_BITWISE_MASK_XOR: u32 = 0;

// Expression attributes, named as in linux/netfilter/nf_tables.h (libc has
// none of the NFTA_* set).
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_FIB_DREG: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_BITWISE_OP: u16 = 6;
const NFTA_COUNTER_PACKETS: u16 = 2;

pub const NFT_META_IIF: u32 = libc::NFT_META_IIF as u32;
pub const NFT_META_IIFNAME: u32 = libc::NFT_META_IIFNAME as u32;
pub const NFT_META_OIFNAME: u32 = libc::NFT_META_OIFNAME as u32;
pub const NFT_META_NFPROTO: u32 = libc::NFT_META_NFPROTO as u32;
pub const NFT_META_IIFGROUP: u32 = libc::NFT_META_IIFGROUP as u32;
pub const NFT_META_L4PROTO: u32 = libc::NFT_META_L4PROTO as u32;
pub const NFT_META_OIFGROUP: u32 = libc::NFT_META_OIFGROUP as u32;
/// `NFT_META_IIFKIND` (not in libc).
pub const NFT_META_IIFKIND: u32 = 26;
pub const NFT_CT_STATE: u32 = libc::NFT_CT_STATE as u32;
pub const NFT_CT_STATUS: u32 = libc::NFT_CT_STATUS as u32;
pub const NFT_CMP_EQ: u32 = libc::NFT_CMP_EQ as u32;
pub const NFT_CMP_NEQ: u32 = libc::NFT_CMP_NEQ as u32;
pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = libc::NFT_PAYLOAD_NETWORK_HEADER as u32;
pub const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = libc::NFT_PAYLOAD_TRANSPORT_HEADER as u32;
/// `enum nft_fib_result` and `enum nft_fib_flags` (not in libc).
pub const NFT_FIB_RESULT_OIF: u32 = 1;
pub const NFTA_FIB_F_SADDR: u32 = 1 << 0;
pub const NFTA_FIB_F_IIF: u32 = 1 << 3;
pub const NFTA_FIB_F_PRESENT: u32 = 1 << 5;
pub const NF_DROP: u32 = libc::NF_DROP as u32;
pub const NF_ACCEPT: u32 = libc::NF_ACCEPT as u32;

/// One expression of a rule: its name and its attributes, in the order the
/// kernel dumps them, so that a rule read back compares equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub name: String,
    pub data: Vec<u8>,
}

fn expr(name: &str, data: &Body) -> Expr {
    Expr {
        name: name.into(),
        data: data.bytes.clone(),
    }
}

/// `meta load KEY => reg 1`
pub fn meta_load(key: u32) -> Expr {
    meta_load_to(key, NFT_REG_1)
}

/// `meta load KEY => reg REGISTER`: the second part of a concatenation.
pub fn meta_load_to(key: u32, register: u32) -> Expr {
    let mut data = Body::default();
    data.be32(NFTA_META_KEY, key).be32(NFTA_META_DREG, register);
    expr("meta", &data)
}

/// `cmp OP reg 1 VALUE`
pub fn cmp(op: u32, value: &[u8]) -> Expr {
    let mut data = Body::default();
    data.put(NFTA_DATA_VALUE, value);
    let mut cmp = Body::default();
    cmp.be32(NFTA_CMP_SREG, NFT_REG_1)
        .be32(NFTA_CMP_OP, op)
        .nested(NFTA_CMP_DATA, &data);
    expr("cmp", &cmp)
}

/// `payload load LEN b @ BASE + OFFSET => reg 1`
pub fn payload_load(base: u32, offset: u32, len: u32) -> Expr {
    let mut data = Body::default();
    data.be32(NFTA_PAYLOAD_DREG, NFT_REG_1)
        .be32(NFTA_PAYLOAD_BASE, base)
        .be32(NFTA_PAYLOAD_OFFSET, offset)
        .be32(NFTA_PAYLOAD_LEN, len);
    expr("payload", &data)
}

/// `fib FLAGS RESULT => reg 1`
pub fn fib(result: u32, flags: u32) -> Expr {
    let mut data = Body::default();
    data.be32(NFTA_FIB_DREG, NFT_REG_1)
        .be32(NFTA_FIB_RESULT, result)
        .be32(NFTA_FIB_FLAGS, flags);
    expr("fib", &data)
}

/// `masquerade`: source NAT to the address of the output interface. With
/// no flags and no port range it has no attributes (and dumps none).
pub fn masquerade() -> Expr {
    expr("masq", &Body::default())
}

/// `counter`: the kernel keeps and dumps the packet and byte counts.
pub fn counter() -> Expr {
    expr("counter", &Body::default())
}

/// `immediate reg 0 VERDICT`
pub fn verdict(code: u32) -> Expr {
    let mut code_attr = Body::default();
    code_attr.be32(NFTA_VERDICT_CODE, code);
    let mut value = Body::default();
    value.nested(NFTA_DATA_VERDICT, &code_attr);
    let mut data = Body::default();
    data.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT)
        .nested(NFTA_IMMEDIATE_DATA, &value);
    expr("immediate", &data)
}

/// `ct load KEY => reg 1`
pub fn ct_load(key: u32) -> Expr {
    let mut data = Body::default();
    data.be32(NFTA_CT_DREG, NFT_REG_1).be32(NFTA_CT_KEY, key);
    expr("ct", &data)
}

/// `bitwise reg 1 = (reg 1 & MASK) ^ 0`, over the mask's length.
pub fn bitwise_and(mask: &[u8]) -> Expr {
    let mut mask_data = Body::default();
    mask_data.put(NFTA_DATA_VALUE, mask);
    let mut xor_data = Body::default();
    xor_data.put(NFTA_DATA_VALUE, &vec![0; mask.len()]);
    let mut data = Body::default();
    data.be32(NFTA_BITWISE_SREG, NFT_REG_1)
        .be32(NFTA_BITWISE_DREG, NFT_REG_1)
        .be32(NFTA_BITWISE_LEN, mask.len() as u32)
        .be32(NFTA_BITWISE_OP, NFT_BITWISE_MASK_XOR)
        .nested(NFTA_BITWISE_MASK, &mask_data)
        .nested(NFTA_BITWISE_XOR, &xor_data);
    expr("bitwise", &data)
}

/// The packets a dumped `counter` expression has counted.
pub fn counter_packets(counter: &Expr) -> Option<u64> {
    let value = Attrs::new(&counter.data).value_of(NFTA_COUNTER_PACKETS)?;
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

/// The dumped rules against the built ones: the packets each rule's
/// counter counted (0 without a counter), or None when they differ.
pub fn match_rules(built: &[Vec<Expr>], dumped: &[Vec<Expr>]) -> Option<Vec<u64>> {
    if built.len() != dumped.len() {
        return None;
    }
    let mut counts = Vec::new();
    for (built, dumped) in built.iter().zip(dumped) {
        if built.len() != dumped.len() {
            return None;
        }
        let mut count = 0;
        for (b, d) in built.iter().zip(dumped) {
            if b.name == "counter" && d.name == "counter" {
                count = counter_packets(d).unwrap_or(0);
            } else if !same_expr(b, d) {
                return None;
            }
        }
        counts.push(count);
    }
    Some(counts)
}

/// Whether a dumped expression is the one built here. Nested attributes
/// are compared by content, whatever NLA_F_NESTED flags either side set.
pub fn same_expr(built: &Expr, dumped: &Expr) -> bool {
    built.name == dumped.name && same_attrs(&built.data, &dumped.data)
}

/// Attributes compare by content, in order. Empty attributes are left
/// out on both sides: the kernel inserts them (NFTA_*_PAD) before 64-bit
/// values to align them, wherever the value happens to fall.
fn same_attrs(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    let (Some(left), Some(right)) = (attr_list(a), attr_list(b)) else {
        return false;
    };
    left.len() == right.len()
        && left
            .iter()
            .zip(&right)
            .all(|((k1, v1), (k2, v2))| k1 == k2 && same_attrs(v1, v2))
}

/// The attributes of `bytes` if they cover it exactly, else None.
fn attr_list(bytes: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut list: Vec<_> = Attrs::new(bytes).collect();
    let covered: usize = list
        .iter()
        .map(|(_, v)| (4 + v.len()).next_multiple_of(4))
        .sum();
    list.retain(|(_, value)| !value.is_empty());
    (covered == bytes.len() && !list.is_empty()).then_some(list)
}
