//! nf_tables sets: declare one, add its elements, read them back, and the
//! `lookup` expression that matches a register against one. Attribute
//! numbers as in linux/netfilter/nf_tables.h.

use super::attrs::Body;
use super::nftables::{Change, Expr, NfMessage, nf_message, nft_type};
use super::reply::{self, Attrs};
use super::{Netlink, NlError, NlResult};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};

const NFT_MSG_NEWSET: u16 = libc::NFT_MSG_NEWSET as u16;
const NFT_MSG_DELSET: u16 = libc::NFT_MSG_DELSET as u16;
const NFT_MSG_NEWSETELEM: u16 = libc::NFT_MSG_NEWSETELEM as u16;
const NFT_MSG_DELSETELEM: u16 = libc::NFT_MSG_DELSETELEM as u16;
const NFT_MSG_GETSETELEM: u16 = libc::NFT_MSG_GETSETELEM as u16;
pub const NFT_SET_INTERVAL: u32 = libc::NFT_SET_INTERVAL as u32;
pub const NFT_SET_ELEM_INTERVAL_END: u32 = libc::NFT_SET_ELEM_INTERVAL_END as u32;

const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
/// Required by NEWSET: names the set within its batch (we refer to sets by
/// name, so any value does).
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_DESC_SIZE: u16 = 1;
const NFT_SET_ANONYMOUS: u32 = libc::NFT_SET_ANONYMOUS as u32;
const NFT_SET_TIMEOUT: u32 = libc::NFT_SET_TIMEOUT as u32;
const NFT_SET_EVAL: u32 = libc::NFT_SET_EVAL as u32;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DYNSET_SET_NAME: u16 = 1;
const NFTA_DYNSET_OP: u16 = 3;
const NFTA_DYNSET_SREG_KEY: u16 = 4;
const NFTA_DYNSET_TIMEOUT: u16 = 6;
const NFTA_DYNSET_EXPR: u16 = 7;
const NFTA_DYNSET_FLAGS: u16 = 9;
const NFT_DYNSET_OP_UPDATE: u32 = libc::NFT_DYNSET_OP_UPDATE as u32;
const NFTA_LIMIT_RATE: u16 = 1;
const NFTA_LIMIT_UNIT: u16 = 2;
const NFTA_LIMIT_BURST: u16 = 3;
const NFTA_LIMIT_TYPE: u16 = 4;
const NFTA_LIMIT_FLAGS: u16 = 5;
const NFT_LIMIT_PKTS: u32 = libc::NFT_LIMIT_PKTS as u32;
const NFT_LIMIT_F_INV: u32 = libc::NFT_LIMIT_F_INV as u32;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_FLAGS: u16 = 5;
const NFT_REG_1: u32 = libc::NFT_REG_1 as u32;
/// An NFTA_SET_ELEM_LIST_ELEMENTS nest holds at most 64 KiB: elements go
/// into messages of this many bytes at most, all in the same batch.
const ELEMENTS_PER_MESSAGE_BYTES: usize = 60 * 1024;

/// A set of the table: its name, key type (nft's datatype number, e.g. 8
/// for ipv6_addr) and length in bytes, and flags (NFT_SET_INTERVAL).
pub struct SetSpec<'a> {
    pub table: &'a str,
    pub name: &'a str,
    pub key_type: u32,
    pub key_len: u32,
    pub flags: u32,
}

/// A meter: an anonymous set that a rule's `dynset` fills, one element per
/// key, each with an expression (a limit) of its own, expiring after
/// `timeout_ms`; deleted with the rule. `id` binds it to that rule in the
/// batch that creates both.
pub struct MeterSpec<'a> {
    pub table: &'a str,
    pub name: &'a str,
    pub id: u32,
    pub key_type: u32,
    pub key_len: u32,
    pub size: u32,
    pub timeout_ms: u64,
}

/// One element: its key bytes and its flags (NFT_SET_ELEM_INTERVAL_END).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Element {
    pub key: Vec<u8>,
    pub flags: u32,
}

fn set_attrs(table: &str, name: &str) -> Body {
    let mut attrs = Body::default();
    attrs
        .string(NFTA_SET_TABLE, table)
        .string(NFTA_SET_NAME, name);
    attrs
}

/// Creates the set, or leaves an identical one as it is.
pub fn new_set(family: u8, set: &SetSpec) -> Change {
    let mut attrs = set_attrs(set.table, set.name);
    attrs
        .be32(NFTA_SET_FLAGS, set.flags)
        .be32(NFTA_SET_KEY_TYPE, set.key_type)
        .be32(NFTA_SET_KEY_LEN, set.key_len)
        .be32(NFTA_SET_ID, 1);
    (
        nft_type(NFT_MSG_NEWSET),
        NLM_F_CREATE,
        nf_message(family, 0, &attrs),
    )
}

/// Creates a meter's set (anonymous, filled by the packet path).
pub fn new_meter(family: u8, meter: &MeterSpec) -> Change {
    let mut desc = Body::default();
    desc.be32(NFTA_SET_DESC_SIZE, meter.size);
    let mut attrs = set_attrs(meter.table, meter.name);
    attrs
        .be32(
            NFTA_SET_FLAGS,
            NFT_SET_ANONYMOUS | NFT_SET_TIMEOUT | NFT_SET_EVAL,
        )
        .be32(NFTA_SET_KEY_TYPE, meter.key_type)
        .be32(NFTA_SET_KEY_LEN, meter.key_len)
        .nested(NFTA_SET_DESC, &desc)
        .be32(NFTA_SET_ID, meter.id);
    (
        nft_type(NFT_MSG_NEWSET),
        NLM_F_CREATE,
        nf_message(family, 0, &attrs),
    )
}

/// `dynset update reg 1 set NAME expr [ EXPR ]`: the key in register 1 is
/// added to (or refreshed in) the meter, and the rule goes on only when
/// the element's expression matches. Built in the order the kernel dumps
/// it (its 64-bit attributes' padding is ignored by the comparison).
pub fn dynset_update(meter: &MeterSpec, expr: &Expr) -> Expr {
    let mut inner = Body::default();
    inner.string(NFTA_EXPR_NAME, &expr.name);
    let mut data = Body::default();
    data.bytes.clone_from(&expr.data);
    inner.nested(NFTA_EXPR_DATA, &data);
    let mut attrs = Body::default();
    attrs
        .be32(NFTA_DYNSET_SREG_KEY, NFT_REG_1)
        .be32(NFTA_DYNSET_OP, NFT_DYNSET_OP_UPDATE)
        .string(NFTA_DYNSET_SET_NAME, meter.name)
        .put(NFTA_DYNSET_TIMEOUT, &meter.timeout_ms.to_be_bytes())
        .nested(NFTA_DYNSET_EXPR, &inner)
        .be32(NFTA_DYNSET_FLAGS, 0);
    Expr {
        name: "dynset".into(),
        data: attrs.bytes,
    }
}

/// `limit rate over RATE/second burst BURST packets`: matches the packets
/// past the bucket.
pub fn limit_over(per_second: u64, burst: u32) -> Expr {
    let mut attrs = Body::default();
    attrs
        .put(NFTA_LIMIT_RATE, &per_second.to_be_bytes())
        .put(NFTA_LIMIT_UNIT, &1u64.to_be_bytes())
        .be32(NFTA_LIMIT_BURST, burst)
        .be32(NFTA_LIMIT_TYPE, NFT_LIMIT_PKTS)
        .be32(NFTA_LIMIT_FLAGS, NFT_LIMIT_F_INV);
    Expr {
        name: "limit".into(),
        data: attrs.bytes,
    }
}

/// Deletes the set (nothing may refer to it by then).
pub fn delete_set(family: u8, table: &str, name: &str) -> Change {
    let attrs = set_attrs(table, name);
    (nft_type(NFT_MSG_DELSET), 0, nf_message(family, 0, &attrs))
}

fn element_list(table: &str, set: &str) -> Body {
    let mut attrs = Body::default();
    attrs
        .string(NFTA_SET_ELEM_LIST_TABLE, table)
        .string(NFTA_SET_ELEM_LIST_SET, set);
    attrs
}

/// Adds `elements`, in as many messages as their size needs; one that
/// exists already fails the batch.
pub fn add_elements(family: u8, table: &str, set: &str, elements: &[Element]) -> Vec<Change> {
    let kind = (NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL);
    element_changes(kind, family, table, set, elements)
}

/// Adds `elements`; one that exists already is left as it is.
pub fn ensure_elements(family: u8, table: &str, set: &str, elements: &[Element]) -> Vec<Change> {
    let kind = (NFT_MSG_NEWSETELEM, NLM_F_CREATE);
    element_changes(kind, family, table, set, elements)
}

/// Deletes `elements`; one that is missing fails the batch (ENOENT).
pub fn delete_elements(family: u8, table: &str, set: &str, elements: &[Element]) -> Vec<Change> {
    element_changes((NFT_MSG_DELSETELEM, 0), family, table, set, elements)
}

/// (message type, flags) of the element messages.
type ElementOp = (u16, u16);

fn element_changes(
    op: ElementOp,
    family: u8,
    table: &str,
    set: &str,
    elements: &[Element],
) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut list = Body::default();
    for element in elements {
        let mut key = Body::default();
        key.put(NFTA_DATA_VALUE, &element.key);
        let mut item = Body::default();
        item.nested(NFTA_SET_ELEM_KEY, &key);
        if element.flags != 0 {
            item.be32(NFTA_SET_ELEM_FLAGS, element.flags);
        }
        list.nested(NFTA_LIST_ELEM, &item);
        if list.bytes.len() > ELEMENTS_PER_MESSAGE_BYTES {
            changes.push(elements_message(op, family, table, set, &list));
            list = Body::default();
        }
    }
    if !list.bytes.is_empty() {
        changes.push(elements_message(op, family, table, set, &list));
    }
    changes
}

fn elements_message(op: ElementOp, family: u8, table: &str, set: &str, list: &Body) -> Change {
    let mut attrs = element_list(table, set);
    attrs.nested(NFTA_SET_ELEM_LIST_ELEMENTS, list);
    (nft_type(op.0), op.1, nf_message(family, 0, &attrs))
}

/// `lookup reg 1 set NAME`: the rule goes on when register 1 is in the set.
pub fn lookup(set: &str) -> Expr {
    let mut data = Body::default();
    data.string(NFTA_LOOKUP_SET, set)
        .be32(NFTA_LOOKUP_SREG, NFT_REG_1)
        .be32(NFTA_LOOKUP_FLAGS, 0);
    Expr {
        name: "lookup".into(),
        data: data.bytes,
    }
}

/// The elements of one dumped NEWSETELEM message.
pub fn parse_elements(body: &[u8]) -> Option<Vec<Element>> {
    let attrs = Attrs::new(body.get(4..)?);
    let list = attrs.value_of(NFTA_SET_ELEM_LIST_ELEMENTS)?;
    let mut elements = Vec::new();
    for (_, item) in Attrs::new(list) {
        let key = Attrs::new(item).value_of(NFTA_SET_ELEM_KEY)?;
        let value = Attrs::new(key).value_of(NFTA_DATA_VALUE)?;
        let flags = Attrs::new(item)
            .value_of(NFTA_SET_ELEM_FLAGS)
            .and_then(|f| reply::u32_at(f, 0))
            .map_or(0, u32::from_be);
        elements.push(Element {
            key: value.to_vec(),
            flags,
        });
    }
    Some(elements)
}

/// The body of an element dump of one set.
pub fn elements_dump_request(family: u8, table: &str, set: &str) -> NfMessage {
    nf_message(family, 0, &element_list(table, set))
}

impl Netlink {
    /// The elements of `set`, in the kernel's order; None when the set is
    /// missing.
    pub fn set_elements(
        &mut self,
        family: u8,
        table: &str,
        set: &str,
    ) -> NlResult<Option<Vec<Element>>> {
        let request = elements_dump_request(family, table, set);
        let objects = match self.dump(nft_type(NFT_MSG_GETSETELEM), &request) {
            Err(error) if error.errno == libc::ENOENT => return Ok(None),
            other => other?,
        };
        let mut elements = Vec::new();
        for object in objects
            .iter()
            .filter(|o| o.kind == nft_type(NFT_MSG_NEWSETELEM))
        {
            elements.extend(parse_elements(&object.body).ok_or_else(NlError::protocol)?);
        }
        Ok(Some(elements))
    }
}
