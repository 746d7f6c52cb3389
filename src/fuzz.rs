//! Fuzzing without libFuzzer: seeded mutations of the corpus in
//! tests/corpus, fed to the two parsers that take outside input. Any panic
//! fails the test and prints the seed and input. `FUZZ_ITERATIONS` sets the
//! count per target (scripts/fuzz.sh runs millions), `FUZZ_SEED` the seed.

use crate::cni::config::{NetConf, ValidAttachment};
use crate::cni::env::Env;
use crate::cni::error::CniResult;
use crate::cni::result::{self, Attachment, Interface, PrevResult};
use crate::cni::{self, Plugin};
use crate::netlink::reply::{Attrs, Messages};
use crate::netlink::{ack_result, address::Address, done_result, link::Link, route::Route};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'\\'];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(input.len() + 1);
        let last = at.min(input.len().saturating_sub(1));
        match rng.below(7) {
            0 if !input.is_empty() => input[last] ^= 1 << rng.below(8),
            1 if !input.is_empty() => input[last] = INTERESTING[rng.below(8)],
            2 => input.insert(at, rng.next() as u8),
            3 if at < input.len() => {
                input.remove(at);
            }
            4 => input.truncate(at),
            5 if !input.is_empty() => {
                let from = rng.below(input.len());
                let len = rng.below(input.len() - from + 1).min(64);
                let chunk = input[from..from + len].to_vec();
                input.splice(at..at, chunk);
            }
            _ => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(other.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[cut..]);
            }
        }
    }
}

fn corpus(dir: &str, decode: fn(Vec<u8>) -> Vec<u8>) -> Vec<Vec<u8>> {
    let path = format!("{}/tests/corpus/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut entries: Vec<_> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let corpus: Vec<_> = entries
        .into_iter()
        .map(|p| decode(std::fs::read(p).unwrap()))
        .collect();
    assert!(!corpus.is_empty(), "empty corpus {path}");
    corpus
}

fn from_hex(text: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8(text).unwrap();
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(target: &str, corpus: &[Vec<u8>], check: &dyn Fn(&[u8])) {
    let iterations = setting("FUZZ_ITERATIONS", 20_000);
    let seed = setting("FUZZ_SEED", 0x5eed_cafe_f00d_0001);
    let mut rng = Rng(seed);
    for input in corpus {
        check(input);
    }
    for i in 0..iterations {
        let mut input = corpus[rng.below(corpus.len())].clone();
        mutate(&mut rng, &mut input, corpus);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&input))) {
            eprintln!("{target}: panic at iteration {i}, seed {seed:#x}, input {input:02x?}");
            resume_unwind(panic);
        }
    }
    eprintln!("{target}: {iterations} inputs, seed {seed:#x}, no panic");
}

/// Does what the real plugin does with a parsed config, minus the kernel.
struct ShapeOnly;

impl Plugin for ShapeOnly {
    fn add(&self, env: &Env, conf: &NetConf) -> CniResult<String> {
        let node = crate::plugin::node::Node {
            mtu: 1400,
            address: std::net::Ipv6Addr::new(0x5fd, 0, 0, 0, 0, 0, 0, 1),
        };
        crate::plugin::requested::requested(env, conf, &node)?;
        let attachment = Attachment {
            host: Interface {
                name: "myc0",
                mac: &[2, 0, 0, 0, 0, 1],
                mtu: 1400,
                sandbox: None,
            },
            pod: Interface {
                name: &env.ifname,
                mac: &[2, 0, 0, 0, 0, 2],
                mtu: 1400,
                sandbox: Some(&env.netns),
            },
            address: "5fd::ff0f:1/128".into(),
            gateway: crate::plugin::naming::GATEWAY,
            routes: &conf.routes,
        };
        result::add_result(&conf.cni_version, conf.prev_result.as_ref(), &attachment)
    }
    fn del(&self, _: &Env, _: &NetConf) -> CniResult<()> {
        Ok(())
    }
    fn check(&self, env: &Env, conf: &NetConf) -> CniResult<()> {
        if let Some(prev) = &conf.prev_result {
            let prev = PrevResult::parse(prev)?;
            let _ = prev.pod_interface(&env.ifname, &env.netns);
        }
        Ok(())
    }
    fn status(&self, _: &NetConf) -> CniResult<()> {
        Ok(())
    }
    fn gc(&self, _: &NetConf, _: &[ValidAttachment]) -> CniResult<()> {
        Ok(())
    }
}

#[test]
fn fuzz_config_and_env() {
    let corpus = corpus("config", |bytes| bytes);
    run("config", &corpus, &|input| {
        // CNI_ARGS comes from the same bytes, as text.
        let args =
            String::from_utf8_lossy(input.get(..input.len().min(40)).unwrap_or(&[])).into_owned();
        let lookup = |name: &str| match name {
            "CNI_CONTAINERID" => Some("c1".to_string()),
            "CNI_NETNS" => Some("/n".to_string()),
            "CNI_IFNAME" => Some("eth0".to_string()),
            "CNI_ARGS" => Some(args.clone()),
            _ => None,
        };
        for command in ["ADD", "CHECK", "GC", "DEL"] {
            let outcome = cni::dispatch(command, &lookup, &mut &input[..], &ShapeOnly);
            assert!(
                serde_json::from_str::<serde_json::Value>(&outcome.stdout).is_ok()
                    || outcome.stdout.is_empty()
            );
        }
    });
}

#[test]
fn fuzz_netlink_replies() {
    let corpus = corpus("netlink", from_hex);
    run("netlink", &corpus, &|input| {
        for message in Messages::new(input).flatten() {
            let _ = Link::parse(message.body);
            let _ = Address::parse(message.body);
            let _ = Route::parse(message.body);
            let _ = ack_result(&message);
            let _ = done_result(&message);
            for (_, value) in Attrs::new(message.body) {
                let _ = Attrs::new(value).count();
            }
        }
    });
}
