//! The plugin's own nf_tables table, `inet mycelium-cni`, and the one way
//! its base chains are declared, compared with the kernel and replaced.
//!
//! Each feature declares its chains as `ChainSpec`s: the base chain (type,
//! hook, priority, policy) and its rules, each rule with a label by which
//! its counter is read. `Snapshot::read` takes the table as the kernel
//! holds it (its flags, every chain, every rule: three requests, whatever
//! the number of chains), `Snapshot::state` compares one spec with it, and
//! `replace_changes` gives the batch that makes the kernel's copy the
//! spec, which every caller applies in one batch with the others.
//!
//! Everything that makes a chain work is compared: a dormant table (its
//! chains are kept but no hook is registered), the chain's type, hook,
//! priority and policy, and every expression of every rule. What CHECK
//! reports as not in force, the next ADD replaces.

use crate::cni::error::{CniResult, Wrap};
use crate::netlink::Netlink;
use crate::netlink::nft_set::{self, SetSpec};
use crate::netlink::nftables::{self as nft, BaseChain, ChainInfo, Expr};
use std::fmt;

pub const TABLE: &str = "mycelium-cni";
pub const FAMILY: u8 = nft::NFPROTO_INET;

/// One rule of a chain: a label that names it (and its counter), and its
/// expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub label: &'static str,
    pub exprs: Vec<Expr>,
}

/// A base chain of the table with its rules, as a feature wants it.
pub struct ChainSpec {
    pub name: String,
    /// "filter" or "nat".
    pub kind: &'static str,
    pub hook: u32,
    pub priority: i32,
    pub policy: u32,
    /// The sets its rules use (meters), declared after the chain and
    /// before its rules in the batch that creates it.
    pub sets: Vec<nft::Change>,
    pub rules: Vec<Rule>,
}

impl ChainSpec {
    fn base(&self) -> BaseChain<'_> {
        BaseChain {
            table: TABLE,
            name: &self.name,
            kind: self.kind,
            hook: self.hook,
            priority: self.priority,
            policy: self.policy,
        }
    }

    fn exprs(&self) -> Vec<Vec<Expr>> {
        self.rules.iter().map(|rule| rule.exprs.clone()).collect()
    }
}

/// The packets each labelled rule's counter counted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counters(Vec<(&'static str, u64)>);

impl Counters {
    /// The count of the rule labelled `label` (0 for a rule without a
    /// counter, or no such rule).
    pub fn of(&self, label: &str) -> u64 {
        self.0
            .iter()
            .filter(|(l, _)| *l == label)
            .map(|(_, n)| n)
            .sum()
    }
}

/// What the kernel holds of one chain.
#[derive(Debug, PartialEq, Eq)]
pub enum ChainState {
    InForce(Counters),
    Missing,
    /// What differs from the spec.
    Altered(&'static str),
}

impl fmt::Display for ChainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainState::InForce(_) => f.write_str("in force"),
            ChainState::Missing => f.write_str("missing"),
            ChainState::Altered(what) => write!(f, "altered: {what}"),
        }
    }
}

/// NFT_TABLE_F_DORMANT: the table's chains stay but hook nothing.
const NFT_TABLE_F_DORMANT: u32 = 1;

/// The table as the kernel holds it.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// None when the table is missing.
    flags: Option<u32>,
    chains: Vec<ChainInfo>,
    rules: Vec<nft::ChainRule>,
}

impl Snapshot {
    /// Three requests: the table's flags, its chains, its rules.
    pub fn read(nl: &mut Netlink) -> CniResult<Snapshot> {
        let flags = nl
            .table_flags(FAMILY, TABLE)
            .wrap(format_args!("look up nf_tables table inet {TABLE}"))?;
        if flags.is_none() {
            return Ok(Snapshot::default());
        }
        let (chains, rules) = nl
            .table_contents(FAMILY, TABLE)
            .wrap(format_args!("list nf_tables table inet {TABLE}"))?;
        Ok(Snapshot {
            flags,
            chains,
            rules,
        })
    }

    /// Whether the table is dormant: its chains hook nothing.
    pub fn is_dormant(&self) -> bool {
        self.flags.unwrap_or(0) & NFT_TABLE_F_DORMANT != 0
    }

    /// Whether a chain of that name exists, whatever it holds.
    pub fn has_chain(&self, name: &str) -> bool {
        self.chains.iter().any(|chain| chain.name == name)
    }

    /// The names of the table's chains.
    pub fn chain_names(&self) -> impl Iterator<Item = &str> {
        self.chains.iter().map(|chain| chain.name.as_str())
    }

    fn rules_of(&self, chain: &str) -> Vec<Vec<Expr>> {
        let of_chain = self.rules.iter().filter(|(c, _)| c == chain);
        of_chain.map(|(_, exprs)| exprs.clone()).collect()
    }

    /// One chain against its spec.
    pub fn state(&self, spec: &ChainSpec) -> ChainState {
        let Some(chain) = self.chains.iter().find(|c| c.name == spec.name) else {
            return ChainState::Missing;
        };
        if self.is_dormant() {
            return ChainState::Altered("the table is dormant");
        }
        if !chain.is(&spec.base()) {
            return ChainState::Altered("its type, hook, priority or policy differ");
        }
        match nft::match_rules(&spec.exprs(), &self.rules_of(&spec.name)) {
            Some(counts) => {
                let labels = spec.rules.iter().map(|rule| rule.label);
                ChainState::InForce(Counters(labels.zip(counts).collect()))
            }
            None => ChainState::Altered("its rules differ"),
        }
    }
}

/// The batch that replaces whatever copy of the chain there is with the
/// spec (other chains are left alone). The table is (re)declared with
/// flags 0 first, which also wakes a dormant one. Concurrent replacements
/// serialise in the kernel and leave one copy.
pub fn replace_changes(spec: &ChainSpec) -> Vec<nft::Change> {
    let mut changes = remove_changes(&spec.name);
    changes.extend(create_changes(spec));
    changes
}

/// As `replace_changes`, with the sets the rules look up declared right
/// after the table: created when missing, left as they are (elements
/// included) when present.
pub fn replace_changes_with_sets(spec: &ChainSpec, sets: &[SetSpec]) -> Vec<nft::Change> {
    let mut changes = replace_changes(spec);
    let declared = sets.iter().map(|set| nft_set::new_set(FAMILY, set));
    changes.splice(1..1, declared);
    changes
}

/// The batch that creates the chain of the spec (it must not exist).
pub fn create_changes(spec: &ChainSpec) -> Vec<nft::Change> {
    let mut changes = vec![nft::new_chain(FAMILY, &spec.base())];
    changes.extend(spec.sets.iter().cloned());
    for rule in &spec.rules {
        changes.push(nft::new_rule(FAMILY, TABLE, &spec.name, &rule.exprs));
    }
    changes
}

/// The batch that removes chain `name` if it exists.
pub fn remove_changes(name: &str) -> Vec<nft::Change> {
    nft::remove_chain(FAMILY, TABLE, name)
}

/// Applies `changes` in one batch, naming what it did in the error. The
/// table is declared once, first: the kernel refuses a second update of a
/// table's flags in one transaction (EINVAL), and waking a dormant table is
/// such an update.
pub fn apply(nl: &mut Netlink, changes: &[nft::Change], what: &str) -> CniResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let table = nft::new_table(FAMILY, TABLE);
    let mut batch = vec![table.clone()];
    batch.extend(changes.iter().filter(|change| **change != table).cloned());
    nl.batch(&batch)
        .wrap(format_args!("{what} in nf_tables table inet {TABLE}"))
}

/// Wakes a dormant table: a batch of its own, since the kernel refuses
/// chain changes in the transaction that changes the table's flags.
pub fn wake(nl: &mut Netlink) -> CniResult<()> {
    nl.batch(&[nft::new_table(FAMILY, TABLE)])
        .wrap(format_args!("wake dormant nf_tables table inet {TABLE}"))
}

/// A netlink socket for nf_tables in the current namespace.
pub fn open() -> CniResult<Netlink> {
    Netlink::open_netfilter().wrap("open nf_tables netlink socket")
}

/// `uninstall`: deletes the table with every chain; absent is fine.
pub fn remove(nl: &mut Netlink) -> CniResult<()> {
    let changes = [
        nft::new_table(FAMILY, TABLE),
        nft::delete_table(FAMILY, TABLE),
    ];
    nl.batch(&changes)
        .wrap(format_args!("delete nf_tables table inet {TABLE}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ChainSpec {
        ChainSpec {
            name: "c".into(),
            kind: "filter",
            hook: nft::NF_INET_FORWARD,
            priority: 0,
            policy: nft::NF_ACCEPT,
            sets: Vec::new(),
            rules: vec![
                Rule {
                    label: "a",
                    exprs: vec![nft::counter(), nft::verdict(nft::NF_DROP)],
                },
                Rule {
                    label: "b",
                    exprs: vec![nft::verdict(nft::NF_ACCEPT)],
                },
            ],
        }
    }

    fn chain(kind: &str) -> ChainInfo {
        ChainInfo {
            name: "c".into(),
            hook: Some(nft::NF_INET_FORWARD),
            priority: Some(0),
            policy: Some(nft::NF_ACCEPT),
            kind: kind.into(),
        }
    }

    fn snapshot(flags: u32, kind: &str) -> Snapshot {
        let rules = spec().exprs().into_iter().map(|e| ("c".to_string(), e));
        Snapshot {
            flags: Some(flags),
            chains: vec![chain(kind)],
            rules: rules.collect(),
        }
    }

    #[test]
    fn a_chain_is_in_force_only_when_everything_matches() {
        let spec = spec();
        assert!(matches!(
            snapshot(0, "filter").state(&spec),
            ChainState::InForce(_)
        ));
        assert_eq!(
            snapshot(NFT_TABLE_F_DORMANT, "filter").state(&spec),
            ChainState::Altered("the table is dormant")
        );
        assert!(matches!(
            snapshot(0, "nat").state(&spec),
            ChainState::Altered(_)
        ));
        assert_eq!(Snapshot::default().state(&spec), ChainState::Missing);
        let mut fewer = snapshot(0, "filter");
        fewer.rules.pop();
        assert_eq!(fewer.state(&spec), ChainState::Altered("its rules differ"));
    }

    #[test]
    fn counters_are_read_by_label() {
        let counters = Counters(vec![("a", 3), ("b", 0), ("a", 2)]);
        assert_eq!(counters.of("a"), 5);
        assert_eq!(counters.of("none"), 0);
    }
}
