//! Request bodies: a fixed header (ifinfomsg, ifaddrmsg and rtmsg emitted
//! from netlink-packet-route's header types; nfgenmsg by hand) followed by
//! attributes, each padded to 4 bytes. `golden.rs` spells the layouts out
//! from the kernel's uapi structs.

use netlink_packet_core::Emitable;

/// nf_tables wants nested attributes flagged; rtnetlink takes them either way.
pub const NLA_F_NESTED: u16 = libc::NLA_F_NESTED as u16;
const NLA_HEADER_LEN: usize = 4;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Body {
    pub bytes: Vec<u8>,
    /// An attribute was too long for its 16-bit length and was left out:
    /// the body must not be sent (`netlink::build` refuses it).
    overflowed: bool,
}

impl Body {
    pub fn with_header(header: &[u8]) -> Body {
        Body {
            bytes: header.to_vec(),
            overflowed: false,
        }
    }

    /// A body that starts with an emitted header or message (NPR's types).
    pub fn emitted(message: &dyn Emitable) -> Body {
        let mut bytes = vec![0; message.buffer_len()];
        message.emit(&mut bytes);
        Body::with_header(&bytes)
    }

    /// Whether every attribute fitted its length field.
    pub fn fits(&self) -> bool {
        !self.overflowed
    }

    /// Appends an attribute. One whose length does not fit in 16 bits is
    /// refused: the body is marked and will not be sent.
    pub fn put(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let Ok(len) = u16::try_from(NLA_HEADER_LEN + value.len()) else {
            self.overflowed = true;
            return self;
        };
        self.bytes.extend_from_slice(&len.to_ne_bytes());
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
        self.overflowed |= inner.overflowed;
        self.put(kind, &inner.bytes)
    }

    /// The same, flagged NLA_F_NESTED (nf_tables style).
    pub fn nested(&mut self, kind: u16, inner: &Body) -> &mut Self {
        self.overflowed |= inner.overflowed;
        self.put(kind | NLA_F_NESTED, &inner.bytes)
    }

    /// Appends another body's bytes (a message's attributes after its header).
    pub fn append(&mut self, other: &Body) -> &mut Self {
        self.overflowed |= other.overflowed;
        self.bytes.extend_from_slice(&other.bytes);
        self
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attribute_over_the_16_bit_length_is_refused() {
        let mut body = Body::default();
        body.put(1, &vec![0; 65_531]);
        assert!(body.fits(), "65,535 bytes with its header");
        body.put(2, &vec![0; 65_532]);
        assert!(!body.fits());
        assert_eq!(body.bytes.len(), 65_536, "the long one left out");
        let mut outer = Body::default();
        outer.nested(3, &body);
        assert!(!outer.fits(), "an overflow inside a nest is carried out");
    }
}
