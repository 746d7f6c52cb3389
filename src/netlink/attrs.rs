//! Request bodies built by hand: a fixed header (ifinfomsg, ifaddrmsg,
//! rtmsg, nfgenmsg) followed by attributes, each padded to 4 bytes. The
//! layouts are the kernel's uapi structs; `golden.rs` spells them out.

use netlink_packet_core::Emitable;

/// nf_tables wants nested attributes flagged; rtnetlink takes them either way.
pub const NLA_F_NESTED: u16 = 0x8000;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Body {
    pub bytes: Vec<u8>,
}

impl Body {
    pub fn with_header(header: &[u8]) -> Body {
        Body {
            bytes: header.to_vec(),
        }
    }

    pub fn put(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        self.bytes.extend_from_slice(&(len as u16).to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(value);
        self.bytes.resize(self.bytes.len().next_multiple_of(4), 0);
        self
    }

    pub fn string(&mut self, kind: u16, text: &str) -> &mut Self {
        let mut value = text.as_bytes().to_vec();
        value.push(0);
        self.put(kind, &value)
    }

    /// A host-order u32 (rtnetlink).
    pub fn u32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.put(kind, &value.to_ne_bytes())
    }

    /// A big-endian u32 (nf_tables).
    pub fn be32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.put(kind, &value.to_be_bytes())
    }

    /// `inner`'s attributes as one nested attribute (rtnetlink style).
    pub fn nest(&mut self, kind: u16, inner: &Body) -> &mut Self {
        self.put(kind, &inner.bytes)
    }

    /// The same, flagged NLA_F_NESTED (nf_tables style).
    pub fn nested(&mut self, kind: u16, inner: &Body) -> &mut Self {
        self.put(kind | NLA_F_NESTED, &inner.bytes)
    }
}

impl Emitable for Body {
    fn buffer_len(&self) -> usize {
        self.bytes.len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.bytes);
    }
}
