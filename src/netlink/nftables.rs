//! nf_tables over NETLINK_NETFILTER: tables, base chains, rules and their
//! expressions, hand-built from `linux/netfilter/nf_tables.h`. Every
//! message is a nfgenmsg (family, version, res_id) and attributes; integers
//! inside nf_tables attributes are big-endian. Changes go in one batch,
//! which the kernel applies whole or not at all.

use super::attrs::Body;
pub use super::nft_expr::*;
use super::reply::{self, Attrs};
use super::{Netlink, NlError, NlResult};
use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE};

pub const NFPROTO_INET: u8 = libc::NFPROTO_INET as u8;
pub const NFPROTO_IPV4: u8 = libc::NFPROTO_IPV4 as u8;
pub const NFPROTO_IPV6: u8 = libc::NFPROTO_IPV6 as u8;
const NFNL_SUBSYS_NFTABLES: u16 = libc::NFNL_SUBSYS_NFTABLES as u16;
const NFNL_MSG_BATCH_BEGIN: u16 = libc::NFNL_MSG_BATCH_BEGIN as u16;
const NFNL_MSG_BATCH_END: u16 = libc::NFNL_MSG_BATCH_END as u16;
const NFT_MSG_NEWTABLE: u16 = libc::NFT_MSG_NEWTABLE as u16;
const NFT_MSG_GETTABLE: u16 = libc::NFT_MSG_GETTABLE as u16;
const NFT_MSG_DELTABLE: u16 = libc::NFT_MSG_DELTABLE as u16;
const NFT_MSG_NEWCHAIN: u16 = libc::NFT_MSG_NEWCHAIN as u16;
const NFT_MSG_GETCHAIN: u16 = libc::NFT_MSG_GETCHAIN as u16;
const NFT_MSG_DELCHAIN: u16 = libc::NFT_MSG_DELCHAIN as u16;
const NFT_MSG_NEWRULE: u16 = libc::NFT_MSG_NEWRULE as u16;
const NFT_MSG_GETRULE: u16 = libc::NFT_MSG_GETRULE as u16;

// Attributes, named as in linux/netfilter/nf_tables.h (not in libc).
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;

pub const NF_INET_PRE_ROUTING: u32 = libc::NF_INET_PRE_ROUTING as u32;
pub const NF_INET_FORWARD: u32 = libc::NF_INET_FORWARD as u32;
pub const NF_INET_POST_ROUTING: u32 = libc::NF_INET_POST_ROUTING as u32;
pub const NF_IP_PRI_RAW: i32 = libc::NF_IP_PRI_RAW;
pub const NF_IP_PRI_FILTER: i32 = libc::NF_IP_PRI_FILTER;
pub const NF_IP_PRI_NAT_SRC: i32 = libc::NF_IP_PRI_NAT_SRC;

/// The body of one nf_tables message: a nfgenmsg (family, version 0,
/// res_id big-endian), then `attrs`.
pub type NfMessage = Body;

pub(crate) fn nf_message(family: u8, res_id: u16, attrs: &Body) -> NfMessage {
    let [high, low] = res_id.to_be_bytes();
    let mut message = Body::with_header(&[family, 0, high, low]);
    message.append(attrs);
    message
}

pub(crate) fn nft_type(message: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | message
}

/// A base chain: `type KIND hook HOOK priority PRIORITY; policy POLICY;`
pub struct BaseChain<'a> {
    pub table: &'a str,
    pub name: &'a str,
    /// "filter" or "nat".
    pub kind: &'a str,
    pub hook: u32,
    pub priority: i32,
    pub policy: u32,
}

/// One change of a batch: message type, flags and body.
pub type Change = (u16, u16, NfMessage);

pub fn new_table(family: u8, name: &str) -> Change {
    let mut attrs = Body::default();
    attrs
        .string(NFTA_TABLE_NAME, name)
        .be32(NFTA_TABLE_FLAGS, 0);
    let message = nf_message(family, 0, &attrs);
    (nft_type(NFT_MSG_NEWTABLE), NLM_F_CREATE, message)
}

pub fn delete_table(family: u8, name: &str) -> Change {
    let mut attrs = Body::default();
    attrs.string(NFTA_TABLE_NAME, name);
    (nft_type(NFT_MSG_DELTABLE), 0, nf_message(family, 0, &attrs))
}

pub fn new_chain(family: u8, chain: &BaseChain) -> Change {
    let mut hook = Body::default();
    hook.be32(NFTA_HOOK_HOOKNUM, chain.hook)
        .be32(NFTA_HOOK_PRIORITY, chain.priority as u32);
    let mut attrs = Body::default();
    attrs
        .string(NFTA_CHAIN_TABLE, chain.table)
        .string(NFTA_CHAIN_NAME, chain.name)
        .string(NFTA_CHAIN_TYPE, chain.kind)
        .be32(NFTA_CHAIN_POLICY, chain.policy)
        .nested(NFTA_CHAIN_HOOK, &hook);
    let message = nf_message(family, 0, &attrs);
    (nft_type(NFT_MSG_NEWCHAIN), NLM_F_CREATE, message)
}

/// A chain named `name` (no hook): creates a regular chain when there is
/// none, and changes nothing in one that exists, base chain or not.
pub fn new_plain_chain(family: u8, table: &str, name: &str) -> Change {
    let message = chain_get_request(family, table, name);
    (nft_type(NFT_MSG_NEWCHAIN), NLM_F_CREATE, message)
}

/// Deletes a chain with its rules.
pub fn delete_chain(family: u8, table: &str, name: &str) -> Change {
    let message = chain_get_request(family, table, name);
    (nft_type(NFT_MSG_DELCHAIN), 0, message)
}

/// Removes `name` from `table` whether or not either exists: both are
/// created first, so that the delete cannot fail for their absence.
pub fn remove_chain(family: u8, table: &str, name: &str) -> Vec<Change> {
    vec![
        new_table(family, table),
        new_plain_chain(family, table, name),
        delete_chain(family, table, name),
    ]
}

pub fn new_rule(family: u8, table: &str, chain: &str, exprs: &[Expr]) -> Change {
    let mut list = Body::default();
    for e in exprs {
        let mut data = Body::default();
        data.bytes.clone_from(&e.data);
        let mut element = Body::default();
        element
            .string(NFTA_EXPR_NAME, &e.name)
            .nested(NFTA_EXPR_DATA, &data);
        list.nested(NFTA_LIST_ELEM, &element);
    }
    let mut attrs = Body::default();
    attrs
        .string(NFTA_RULE_TABLE, table)
        .string(NFTA_RULE_CHAIN, chain)
        .nested(NFTA_RULE_EXPRESSIONS, &list);
    let message = nf_message(family, 0, &attrs);
    (
        nft_type(NFT_MSG_NEWRULE),
        NLM_F_CREATE | NLM_F_APPEND,
        message,
    )
}

/// A dump of every chain, or every rule, of one table (filtered by the
/// kernel): the body of both.
pub fn table_dump_request(family: u8, table: &str) -> NfMessage {
    let mut attrs = Body::default();
    attrs.string(NFTA_RULE_TABLE, table);
    nf_message(family, 0, &attrs)
}

/// A chain named by table and name alone: the body of a GET, of a plain
/// NEWCHAIN and of a DELCHAIN.
pub fn chain_get_request(family: u8, table: &str, chain: &str) -> NfMessage {
    let mut attrs = Body::default();
    attrs
        .string(NFTA_CHAIN_TABLE, table)
        .string(NFTA_CHAIN_NAME, chain);
    nf_message(family, 0, &attrs)
}

/// The body of the batch begin and end messages around the changes.
pub fn batch_marker() -> NfMessage {
    nf_message(0, NFNL_SUBSYS_NFTABLES, &Body::default())
}

/// A rule as the kernel dumps it: its expressions with their attributes.
pub fn parse_rule(body: &[u8]) -> Option<Vec<Expr>> {
    let attrs = Attrs::new(body.get(4..)?);
    let list = attrs.value_of(NFTA_RULE_EXPRESSIONS)?;
    parse_exprs(list)
}

/// The chain a dumped rule belongs to.
pub fn rule_chain(body: &[u8]) -> Option<String> {
    let attrs = Attrs::new(body.get(4..)?);
    attrs.value_of(NFTA_RULE_CHAIN).map(reply::c_string)
}

fn parse_exprs(list: &[u8]) -> Option<Vec<Expr>> {
    let mut exprs = Vec::new();
    for (kind, element) in Attrs::new(list) {
        if kind != NFTA_LIST_ELEM {
            return None;
        }
        let name = reply::c_string(Attrs::new(element).value_of(NFTA_EXPR_NAME)?);
        let data = Attrs::new(element)
            .value_of(NFTA_EXPR_DATA)
            .unwrap_or(&[])
            .to_vec();
        exprs.push(Expr { name, data });
    }
    Some(exprs)
}

/// A dumped rule: the name of its chain and its expressions.
pub type ChainRule = (String, Vec<Expr>);

/// A chain as the kernel reports it; a regular (not base) chain has no
/// hook, policy or type.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChainInfo {
    pub name: String,
    pub hook: Option<u32>,
    pub priority: Option<i32>,
    pub policy: Option<u32>,
    pub kind: String,
}

impl ChainInfo {
    /// Whether this is the base chain `wanted` describes.
    pub fn is(&self, wanted: &BaseChain) -> bool {
        self.hook == Some(wanted.hook)
            && self.priority == Some(wanted.priority)
            && self.policy == Some(wanted.policy)
            && self.kind == wanted.kind
    }
}

fn be32(bytes: Option<&[u8]>) -> Option<u32> {
    Some(u32::from_be_bytes(bytes?.get(..4)?.try_into().ok()?))
}

pub fn parse_chain(body: &[u8]) -> ChainInfo {
    let attrs = body.get(4..).unwrap_or(&[]);
    let hook = Attrs::new(attrs).value_of(NFTA_CHAIN_HOOK).unwrap_or(&[]);
    ChainInfo {
        name: Attrs::new(attrs)
            .value_of(NFTA_CHAIN_NAME)
            .map(reply::c_string)
            .unwrap_or_default(),
        hook: be32(Attrs::new(hook).value_of(NFTA_HOOK_HOOKNUM)),
        priority: be32(Attrs::new(hook).value_of(NFTA_HOOK_PRIORITY)).map(|p| p as i32),
        policy: be32(Attrs::new(attrs).value_of(NFTA_CHAIN_POLICY)),
        kind: Attrs::new(attrs)
            .value_of(NFTA_CHAIN_TYPE)
            .map(reply::c_string)
            .unwrap_or_default(),
    }
}

/// What a datagram costs the socket's send buffer beyond its bytes (the
/// kernel refuses one over `sk_sndbuf - 32`; the skb overhead is counted
/// too): generous, since too small a buffer fails the whole batch.
const SNDBUF_OVERHEAD: usize = 64 * 1024;
/// What the default send buffer (212,992 bytes here) takes without asking.
const DEFAULT_SNDBUF_FITS: usize = 128 * 1024;

impl Netlink {
    /// Applies `changes` in one batch: all of them or none. The kernel
    /// handles the whole batch inside the send and queues its replies before
    /// the send returns. Only the last change asks for an ACK: a failing one
    /// is reported whether or not it asked, so the replies are one ACK plus
    /// one per error, however long the batch (an ACK for each of thousands of
    /// changes overflowed the receive queue). The batch must be one datagram,
    /// so the send buffer is raised to fit it first.
    pub fn batch(&mut self, changes: &[Change]) -> NlResult<()> {
        let begin = self.next_sequence();
        let mut datagram = super::build(NFNL_MSG_BATCH_BEGIN, 0, begin, &batch_marker())?;
        let mut last = begin;
        for (i, (kind, flags, message)) in changes.iter().enumerate() {
            last = self.next_sequence();
            let ack = if i + 1 == changes.len() { NLM_F_ACK } else { 0 };
            datagram.extend(super::build(*kind, flags | ack, last, message)?);
        }
        let end = self.next_sequence();
        datagram.extend(super::build(NFNL_MSG_BATCH_END, 0, end, &batch_marker())?);
        if datagram.len() > DEFAULT_SNDBUF_FITS {
            self.fit_send_buffer(datagram.len() + SNDBUF_OVERHEAD)?;
        }
        self.send_datagram(&datagram)?;
        let mut first_error = None;
        let mut last_acked = false;
        while self.receive_pending()? {
            for message in reply::Messages::new(&self.buf) {
                let message = message.ok_or_else(NlError::protocol)?;
                if message.kind != netlink_packet_core::NLMSG_ERROR
                    || !(begin..=end).contains(&message.sequence)
                {
                    continue;
                }
                if let (Err(error), None) = (super::ack_result(&message), &first_error) {
                    first_error = Some(error);
                }
                last_acked |= message.sequence == last;
            }
        }
        match first_error {
            Some(error) => Err(error),
            None if last_acked || changes.is_empty() => Ok(()),
            None => Err(NlError::protocol()),
        }
    }

    /// Every chain of `table` and every rule of it, by chain, in order: two
    /// dumps. Empty when the table is missing.
    pub fn table_contents(
        &mut self,
        family: u8,
        table: &str,
    ) -> NlResult<(Vec<ChainInfo>, Vec<ChainRule>)> {
        let request = table_dump_request(family, table);
        let chains = match self.dump(nft_type(NFT_MSG_GETCHAIN), &request) {
            Err(error) if error.errno == libc::ENOENT => return Ok(Default::default()),
            other => other?,
        };
        let chains = chains
            .iter()
            .filter(|object| object.kind == nft_type(NFT_MSG_NEWCHAIN))
            .map(|object| parse_chain(&object.body))
            .collect();
        let mut rules = Vec::new();
        let objects = match self.dump(nft_type(NFT_MSG_GETRULE), &request) {
            Err(error) if error.errno == libc::ENOENT => Vec::new(),
            other => other?,
        };
        for object in objects
            .iter()
            .filter(|o| o.kind == nft_type(NFT_MSG_NEWRULE))
        {
            let chain = rule_chain(&object.body).ok_or_else(NlError::protocol)?;
            let exprs = parse_rule(&object.body).ok_or_else(NlError::protocol)?;
            rules.push((chain, exprs));
        }
        Ok((chains, rules))
    }

    /// The flags of `table` (NFT_TABLE_F_DORMANT, ...), or None when it is missing.
    pub fn table_flags(&mut self, family: u8, table: &str) -> NlResult<Option<u32>> {
        let mut attrs = Body::default();
        attrs.string(NFTA_TABLE_NAME, table);
        match self.get(nft_type(NFT_MSG_GETTABLE), &nf_message(family, 0, &attrs)) {
            Ok(body) => {
                let attrs = Attrs::new(body.get(4..).unwrap_or(&[]));
                Ok(Some(be32(attrs.value_of(NFTA_TABLE_FLAGS)).unwrap_or(0)))
            }
            Err(error) if error.errno == libc::ENOENT => Ok(None),
            Err(error) => Err(error),
        }
    }
}
