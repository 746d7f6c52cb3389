//! Golden bytes for every nf_tables message the plugin sends, spelled out
//! from `linux/netfilter/nf_tables.h` and `nfnetlink.h` (nlmsghdr, nfgenmsg,
//! nlattr), independently of the builders; and the reply walkers on
//! kernel-shaped dumps.

/// The request as `Netlink` would send it (every body here fits).
fn build(kind: u16, flags: u16, sequence: u32, body: &super::attrs::Body) -> Vec<u8> {
    super::build(kind, flags, sequence, body).unwrap()
}
use super::nftables::{self as nft, Expr};

const REQUEST: u16 = 0x01;
const ACK: u16 = 0x04;
const DUMP: u16 = 0x300;
const CREATE: u16 = 0x400;
const APPEND: u16 = 0x800;
const NESTED: u16 = 0x8000;
const INET: u8 = 1;

fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
    bytes.extend(kind.to_ne_bytes());
    bytes.extend(payload);
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    bytes
}

fn nest(kind: u16, parts: &[Vec<u8>]) -> Vec<u8> {
    attr(kind | NESTED, &parts.concat())
}

fn string(kind: u16, text: &str) -> Vec<u8> {
    attr(kind, &[text.as_bytes(), &[0]].concat())
}

fn be32(kind: u16, value: u32) -> Vec<u8> {
    attr(kind, &value.to_be_bytes())
}

/// nlmsghdr, then struct nfgenmsg { family, version 0, res_id (BE) }.
fn message(
    kind: u16,
    flags: u16,
    sequence: u32,
    family: u8,
    res_id: u16,
    attrs: &[Vec<u8>],
) -> Vec<u8> {
    let body = [
        vec![family, 0],
        res_id.to_be_bytes().to_vec(),
        attrs.concat(),
    ]
    .concat();
    let mut bytes = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
    bytes.extend(kind.to_ne_bytes());
    bytes.extend(flags.to_ne_bytes());
    bytes.extend(sequence.to_ne_bytes());
    bytes.extend(0u32.to_ne_bytes());
    bytes.extend(body);
    bytes
}

/// NFT_MSG_* in the nf_tables subsystem (10).
fn nft_type(message: u16) -> u16 {
    (10 << 8) | message
}

fn emit((kind, flags, message): nft::Change, sequence: u32) -> Vec<u8> {
    build(kind, flags | ACK, sequence, &message)
}

#[test]
fn batch_begin_and_end_name_the_nftables_subsystem() {
    let expected = message(0x10, REQUEST, 1, 0, 10, &[]);
    assert_eq!(build(0x10, 0, 1, &nft::batch_marker()), expected);
}

#[test]
fn table_create_and_delete() {
    let name = string(1, "mycelium-cni"); // NFTA_TABLE_NAME
    let create = message(
        nft_type(0),
        REQUEST | ACK | CREATE,
        2,
        INET,
        0,
        &[name.clone(), be32(2, 0)],
    );
    assert_eq!(emit(nft::new_table(INET, "mycelium-cni"), 2), create);
    let delete = message(nft_type(2), REQUEST | ACK, 3, INET, 0, &[name]);
    assert_eq!(emit(nft::delete_table(INET, "mycelium-cni"), 3), delete);
}

#[test]
fn base_chain_on_prerouting_at_raw() {
    let hook = nest(4, &[be32(1, 0), be32(2, (-300i32) as u32)]); // NFTA_CHAIN_HOOK
    let attrs = [
        string(1, "mycelium-cni"), // NFTA_CHAIN_TABLE
        string(3, "pod-source"),   // NFTA_CHAIN_NAME
        string(7, "filter"),       // NFTA_CHAIN_TYPE
        be32(5, 1),                // NFTA_CHAIN_POLICY: NF_ACCEPT
        hook,
    ];
    let expected = message(nft_type(3), REQUEST | ACK | CREATE, 4, INET, 0, &attrs);
    let chain = nft::BaseChain {
        kind: "filter",
        table: "mycelium-cni",
        name: "pod-source",
        hook: nft::NF_INET_PRE_ROUTING,
        priority: nft::NF_IP_PRI_RAW,
        policy: nft::NF_ACCEPT,
    };
    assert_eq!(emit(nft::new_chain(INET, &chain), 4), expected);
}

#[test]
fn plain_chain_create_delete_and_forward_base_chain() {
    let names = [string(1, "t"), string(3, "overlay-in-n")]; // TABLE, NAME
    let create = message(nft_type(3), REQUEST | ACK | CREATE, 8, INET, 0, &names);
    assert_eq!(
        emit(nft::new_plain_chain(INET, "t", "overlay-in-n"), 8),
        create
    );
    let delete = message(nft_type(5), REQUEST | ACK, 9, INET, 0, &names); // DELCHAIN
    assert_eq!(
        emit(nft::delete_chain(INET, "t", "overlay-in-n"), 9),
        delete
    );
    let hook = nest(4, &[be32(1, 2), be32(2, 0)]); // NF_INET_FORWARD, priority filter
    let attrs = [
        string(1, "t"),
        string(3, "overlay-in-n"),
        string(7, "filter"),
        be32(5, 1),
        hook,
    ];
    let expected = message(nft_type(3), REQUEST | ACK | CREATE, 10, INET, 0, &attrs);
    let chain = nft::BaseChain {
        kind: "filter",
        table: "t",
        name: "overlay-in-n",
        hook: nft::NF_INET_FORWARD,
        priority: nft::NF_IP_PRI_FILTER,
        policy: nft::NF_ACCEPT,
    };
    assert_eq!(emit(nft::new_chain(INET, &chain), 10), expected);
}

#[test]
fn conntrack_and_bitwise_expressions() {
    let exprs = [
        nft::ct_load(nft::NFT_CT_STATE),
        nft::bitwise_and(&6u32.to_ne_bytes()),
        nft::meta_load(nft::NFT_META_OIFGROUP),
    ];
    let list = nest(
        4,
        &[
            element("ct", &[be32(1, 1), be32(2, 0)]), // DREG 1, KEY state
            // SREG 1, DREG 1, LEN 4, OP mask-xor, MASK { VALUE }, XOR { VALUE }
            element(
                "bitwise",
                &[
                    be32(1, 1),
                    be32(2, 1),
                    be32(3, 4),
                    be32(6, 0),
                    nest(4, &[attr(1, &6u32.to_ne_bytes())]),
                    nest(5, &[attr(1, &[0; 4])]),
                ],
            ),
            element("meta", &[be32(2, 22), be32(1, 1)]), // KEY oifgroup, DREG 1
        ],
    );
    let attrs = [string(1, "t"), string(2, "c"), list];
    let expected = message(
        nft_type(6),
        REQUEST | ACK | CREATE | APPEND,
        11,
        INET,
        0,
        &attrs,
    );
    assert_eq!(emit(nft::new_rule(INET, "t", "c", &exprs), 11), expected);
}

/// NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { ... } }
fn element(name: &str, data: &[Vec<u8>]) -> Vec<u8> {
    nest(1, &[string(1, name), nest(2, data)])
}

#[test]
fn rule_with_every_expression_kind() {
    let exprs = [
        nft::meta_load(nft::NFT_META_IIFKIND),
        nft::cmp(nft::NFT_CMP_NEQ, b"myc"),
        nft::payload_load(nft::NFT_PAYLOAD_NETWORK_HEADER, 8, 16),
        nft::fib(nft::NFT_FIB_RESULT_OIF, 0x29),
        nft::counter(),
        nft::verdict(nft::NF_DROP),
    ];
    let list = nest(
        4, // NFTA_RULE_EXPRESSIONS
        &[
            element("meta", &[be32(2, 26), be32(1, 1)]), // KEY iifkind, DREG 1
            element(
                "cmp",
                &[be32(1, 1), be32(2, 1), nest(3, &[attr(1, b"myc")])],
            ),
            element(
                "payload",
                &[be32(1, 1), be32(2, 1), be32(3, 8), be32(4, 16)],
            ),
            element("fib", &[be32(1, 1), be32(2, 1), be32(3, 0x29)]),
            element("counter", &[]),
            // DREG verdict, DATA { VERDICT { CODE NF_DROP } }
            element(
                "immediate",
                &[be32(1, 0), nest(2, &[nest(2, &[be32(1, 0)])])],
            ),
        ],
    );
    let attrs = [string(1, "t"), string(2, "c"), list];
    let expected = message(
        nft_type(6),
        REQUEST | ACK | CREATE | APPEND,
        5,
        INET,
        0,
        &attrs,
    );
    assert_eq!(emit(nft::new_rule(INET, "t", "c", &exprs), 5), expected);
}

#[test]
fn table_dump_and_chain_lookup() {
    // NFTA_RULE_TABLE and NFTA_CHAIN_TABLE are both 1: one body dumps the
    // table's rules (7) and its chains (4).
    let attrs = [string(1, "t")];
    let expected = message(nft_type(7), REQUEST | DUMP, 6, INET, 0, &attrs);
    assert_eq!(
        build(nft_type(7), DUMP, 6, &nft::table_dump_request(INET, "t")),
        expected
    );
    let attrs = [string(1, "t"), string(3, "c")];
    let expected = message(nft_type(4), REQUEST | ACK, 7, INET, 0, &attrs);
    assert_eq!(
        build(nft_type(4), ACK, 7, &nft::chain_get_request(INET, "t", "c")),
        expected
    );
}

/// A NEWRULE body as the kernel dumps it: table, chain, handle, then the
/// expressions, with the counter holding its counts.
fn dumped_rule(nested_flag: bool) -> Vec<u8> {
    let maybe = |kind: u16, parts: &[Vec<u8>]| {
        if nested_flag {
            nest(kind, parts)
        } else {
            attr(kind, &parts.concat())
        }
    };
    let counter = [
        attr(1, &640u64.to_be_bytes()), // NFTA_COUNTER_BYTES
        attr(2, &7u64.to_be_bytes()),   // NFTA_COUNTER_PACKETS
    ];
    let list = nest(
        4,
        &[
            element(
                "cmp",
                &[be32(1, 1), be32(2, 0), maybe(3, &[attr(1, b"myc")])],
            ),
            element("counter", &counter),
        ],
    );
    let handle = attr(3, &2u64.to_be_bytes());
    [
        vec![1, 0, 0, 0],
        string(1, "t"),
        string(2, "c"),
        handle,
        list,
    ]
    .concat()
}

#[test]
fn dumped_rules_compare_by_content_and_yield_their_counts() {
    let built = [nft::cmp(nft::NFT_CMP_EQ, b"myc"), nft::counter()];
    for nested_flag in [true, false] {
        let dumped = nft::parse_rule(&dumped_rule(nested_flag)).unwrap();
        assert_eq!(dumped.len(), 2);
        assert!(nft::same_expr(&built[0], &dumped[0]), "flag {nested_flag}");
        assert_eq!(nft::counter_packets(&dumped[1]), Some(7));
    }
    let other = nft::cmp(nft::NFT_CMP_EQ, b"eth");
    let dumped = nft::parse_rule(&dumped_rule(true)).unwrap();
    assert!(!nft::same_expr(&other, &dumped[0]));
    let renamed = Expr {
        name: "meta".into(),
        data: built[0].data.clone(),
    };
    assert!(!nft::same_expr(&renamed, &dumped[0]));
    assert_eq!(nft::parse_rule(&[1, 0]), None);
}

#[test]
fn dumped_chain_reads_hook_priority_policy_and_type() {
    let hook = nest(4, &[be32(1, 0), be32(2, (-300i32) as u32)]);
    let body = [
        vec![1, 0, 0, 0],
        string(1, "t"),
        string(3, "c"),
        hook,
        be32(5, 1),
        string(7, "filter"),
    ]
    .concat();
    let chain = nft::parse_chain(&body);
    assert_eq!(
        (
            chain.hook,
            chain.priority,
            chain.policy,
            chain.kind.as_str()
        ),
        (Some(0), Some(-300), Some(1), "filter")
    );
    let regular = nft::parse_chain(&[vec![1, 0, 0, 0], string(3, "c")].concat());
    assert_eq!(regular.hook, None);
}

/// The fast path's set: `type ipv6_addr . iface_index` (nft --debug=mnl
/// sends key type 0x214 = 8 << 6 | 20, key length 20, set ID 1).
#[test]
fn concatenated_set_of_address_and_interface_index() {
    let spec = super::nft_set::SetSpec {
        table: "mycelium-cni",
        name: "pods6",
        key_type: 0x214,
        key_len: 20,
        flags: 0,
    };
    let attrs = [
        string(1, "mycelium-cni"), // NFTA_SET_TABLE
        string(2, "pods6"),        // NFTA_SET_NAME
        be32(3, 0),                // NFTA_SET_FLAGS
        be32(4, 0x214),            // NFTA_SET_KEY_TYPE
        be32(5, 20),               // NFTA_SET_KEY_LEN
        be32(10, 1),               // NFTA_SET_ID
    ];
    let expected = message(nft_type(9), REQUEST | ACK | CREATE, 6, INET, 0, &attrs);
    assert_eq!(emit(super::nft_set::new_set(INET, &spec), 6), expected);
}

/// NEWSETELEM without NLM_F_EXCL (an element that exists stays) and
/// DELSETELEM, one element of 400::1 . index 5 (host order).
#[test]
fn set_elements_added_and_deleted() {
    use super::nft_set::{Element, delete_elements, ensure_elements};
    let mut key = vec![4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    key.extend(5u32.to_ne_bytes());
    let element = Element {
        key: key.clone(),
        flags: 0,
    };
    // NFTA_SET_ELEM_LIST_ELEMENTS { NFTA_LIST_ELEM { NFTA_SET_ELEM_KEY {
    // NFTA_DATA_VALUE } } }
    let list = nest(3, &[nest(1, &[nest(1, &[attr(1, &key)])])]);
    let attrs = [string(1, "mycelium-cni"), string(2, "pods6"), list];
    let elements = std::slice::from_ref(&element);
    let add = ensure_elements(INET, "mycelium-cni", "pods6", elements);
    assert_eq!(add.len(), 1);
    let expected = message(nft_type(12), REQUEST | ACK | CREATE, 7, INET, 0, &attrs);
    assert_eq!(emit(add.into_iter().next().unwrap(), 7), expected);
    let delete = delete_elements(INET, "mycelium-cni", "pods6", elements);
    let expected = message(nft_type(14), REQUEST | ACK, 8, INET, 0, &attrs);
    assert_eq!(emit(delete.into_iter().next().unwrap(), 8), expected);
}

/// `ip6 saddr . meta iif @pods6`: the index loaded into register 2 (the
/// 16 bytes after register 1), then `lookup reg 1 set pods6`, as nft
/// --debug=netlink shows; `ip saddr . meta iif` loads it into register 9.
#[test]
fn concatenation_registers_and_lookup() {
    let exprs = [
        nft::meta_load_to(nft::NFT_META_IIF, nft::NFT_REG_2),
        nft::meta_load_to(nft::NFT_META_IIF, nft::NFT_REG32_01),
        super::nft_set::lookup("pods6"),
    ];
    let list = nest(
        4, // NFTA_RULE_EXPRESSIONS
        &[
            element("meta", &[be32(2, 4), be32(1, 2)]), // KEY iif, DREG 2
            element("meta", &[be32(2, 4), be32(1, 9)]), // KEY iif, DREG 32_01
            // NFTA_LOOKUP_SET, _SREG 1, _FLAGS 0
            element("lookup", &[string(1, "pods6"), be32(2, 1), be32(5, 0)]),
        ],
    );
    let attrs = [string(1, "t"), string(2, "c"), list];
    let expected = message(
        nft_type(6),
        REQUEST | ACK | CREATE | APPEND,
        9,
        INET,
        0,
        &attrs,
    );
    assert_eq!(emit(nft::new_rule(INET, "t", "c", &exprs), 9), expected);
}
