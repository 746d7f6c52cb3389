//! nf_tables rule expressions, built in the attribute order the kernel
//! dumps them (`nft --debug=netlink` shows the same), so that a rule read
//! back compares equal to the one built here. Integers inside expression
//! attributes are big-endian; register contents are compared as bytes.

use super::attrs::Body;
use super::reply::Attrs;

/// Registers as nft uses them: 16-byte register 1, and the verdict register.
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;
/// NFT_BITWISE_MASK_XOR (formerly BOOL): `reg = (reg & mask) ^ xor`.
const NFT_BITWISE_MASK_XOR: u32 = 0;

pub const NFT_META_IIFNAME: u32 = 6;
pub const NFT_META_NFPROTO: u32 = 15;
pub const NFT_META_OIFGROUP: u32 = 22;
pub const NFT_META_IIFKIND: u32 = 26;
pub const NFT_CT_STATE: u32 = 0;
pub const NFT_CT_STATUS: u32 = 2;
pub const NFT_CMP_EQ: u32 = 0;
pub const NFT_CMP_NEQ: u32 = 1;
pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub const NFT_FIB_RESULT_OIF: u32 = 1;
pub const NFTA_FIB_F_SADDR: u32 = 1 << 0;
pub const NFTA_FIB_F_IIF: u32 = 1 << 3;
pub const NFTA_FIB_F_PRESENT: u32 = 1 << 5;
pub const NF_DROP: u32 = 0;
pub const NF_ACCEPT: u32 = 1;

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
    expr("meta", Body::default().be32(2, key).be32(1, NFT_REG_1))
}

/// `cmp OP reg 1 VALUE`
pub fn cmp(op: u32, value: &[u8]) -> Expr {
    let mut data = Body::default();
    data.put(NFTA_DATA_VALUE, value);
    expr(
        "cmp",
        Body::default()
            .be32(1, NFT_REG_1)
            .be32(2, op)
            .nested(3, &data),
    )
}

/// `payload load LEN b @ BASE + OFFSET => reg 1`
pub fn payload_load(base: u32, offset: u32, len: u32) -> Expr {
    let mut data = Body::default();
    data.be32(1, NFT_REG_1)
        .be32(2, base)
        .be32(3, offset)
        .be32(4, len);
    expr("payload", &data)
}

/// `fib FLAGS RESULT => reg 1`
pub fn fib(result: u32, flags: u32) -> Expr {
    let mut data = Body::default();
    data.be32(1, NFT_REG_1).be32(2, result).be32(3, flags);
    expr("fib", &data)
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
    expr(
        "immediate",
        Body::default().be32(1, NFT_REG_VERDICT).nested(2, &value),
    )
}

/// `ct load KEY => reg 1`
pub fn ct_load(key: u32) -> Expr {
    expr("ct", Body::default().be32(1, NFT_REG_1).be32(2, key))
}

/// `bitwise reg 1 = (reg 1 & MASK) ^ 0`, over the mask's length.
pub fn bitwise_and(mask: &[u8]) -> Expr {
    let mut mask_data = Body::default();
    mask_data.put(NFTA_DATA_VALUE, mask);
    let mut xor_data = Body::default();
    xor_data.put(NFTA_DATA_VALUE, &vec![0; mask.len()]);
    let mut data = Body::default();
    data.be32(1, NFT_REG_1)
        .be32(2, NFT_REG_1)
        .be32(3, mask.len() as u32)
        .be32(6, NFT_BITWISE_MASK_XOR)
        .nested(4, &mask_data)
        .nested(5, &xor_data);
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
    let list: Vec<_> = Attrs::new(bytes).collect();
    let covered: usize = list
        .iter()
        .map(|(_, v)| (4 + v.len()).next_multiple_of(4))
        .sum();
    (covered == bytes.len() && !list.is_empty()).then_some(list)
}
