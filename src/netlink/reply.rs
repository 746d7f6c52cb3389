//! Hand-walking of netlink replies: headers, then attributes, with every
//! length checked against the buffer. Nothing here can panic on bad input.

pub const HEADER_LEN: usize = 16;
const ATTR_HEADER_LEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

pub fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        bytes.get(offset..offset + 2)?.try_into().ok()?,
    ))
}

pub fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        bytes.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

pub fn i32_at(bytes: &[u8], offset: usize) -> Option<i32> {
    u32_at(bytes, offset).map(|value| value as i32)
}

/// A NUL-terminated (or not) attribute payload as text.
pub fn c_string(bytes: &[u8]) -> String {
    let text = bytes.split(|&b| b == 0).next().unwrap_or(bytes);
    String::from_utf8_lossy(text).into_owned()
}

pub fn ipv6(bytes: &[u8]) -> Option<std::net::Ipv6Addr> {
    let octets: [u8; 16] = bytes.try_into().ok()?;
    Some(std::net::Ipv6Addr::from(octets))
}

/// One netlink message of a reply: its type, sequence and body (after the header).
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub sequence: u32,
    pub body: &'a [u8],
}

/// Iterates the messages of one datagram; yields `None` once on a malformed header.
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    pub fn new(datagram: &'a [u8]) -> Self {
        Messages { rest: datagram }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Option<Message<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = parse_message(self.rest);
        match parsed {
            Some((message, consumed)) => {
                self.rest = self.rest.get(consumed..).unwrap_or(&[]);
                Some(Some(message))
            }
            None => {
                self.rest = &[];
                Some(None)
            }
        }
    }
}

fn parse_message(bytes: &[u8]) -> Option<(Message<'_>, usize)> {
    let length = u32_at(bytes, 0)? as usize;
    if length < HEADER_LEN {
        return None;
    }
    let message = Message {
        kind: u16_at(bytes, 4)?,
        flags: u16_at(bytes, 6)?,
        sequence: u32_at(bytes, 8)?,
        body: bytes.get(HEADER_LEN..length)?,
    };
    Some((message, align4(length)))
}

/// Iterates (type, payload) attributes; stops at the first malformed one.
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Attrs { rest: bytes }
    }

    pub fn value_of(mut self, wanted: u16) -> Option<&'a [u8]> {
        self.find(|(kind, _)| *kind == wanted)
            .map(|(_, value)| value)
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let length = u16_at(self.rest, 0)? as usize;
        let kind = u16_at(self.rest, 2)? & NLA_TYPE_MASK;
        let value = if length >= ATTR_HEADER_LEN {
            self.rest.get(ATTR_HEADER_LEN..length)
        } else {
            None
        };
        let Some(value) = value else {
            self.rest = &[];
            return None;
        };
        self.rest = self.rest.get(align4(length)..).unwrap_or(&[]);
        Some((kind, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(length: u32, kind: u16, sequence: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&length.to_ne_bytes());
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&0u16.to_ne_bytes());
        bytes.extend_from_slice(&sequence.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes
    }

    #[test]
    fn walks_two_messages_with_padding() {
        let mut datagram = header(21, 16, 7);
        datagram.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        datagram.extend(header(16, 3, 7));
        let kinds: Vec<_> = Messages::new(&datagram)
            .map(|m| m.map(|m| (m.kind, m.sequence, m.body.len())))
            .collect();
        assert_eq!(kinds, vec![Some((16, 7, 5)), Some((3, 7, 0))]);
    }

    #[test]
    fn rejects_length_past_end_and_short_header() {
        let datagram = header(64, 16, 1);
        assert!(Messages::new(&datagram).next().unwrap().is_none());
        let mut short = header(8, 16, 1);
        short.truncate(16);
        let all: Vec<_> = Messages::new(&short).map(|m| m.is_some()).collect();
        assert_eq!(all, vec![false]);
        assert_eq!(
            Messages::new(&[1, 2, 3])
                .map(|m| m.is_some())
                .collect::<Vec<_>>(),
            vec![false]
        );
    }

    #[test]
    fn walks_attributes_and_stops_on_garbage() {
        // IFLA_MTU=1400, then a NUL-terminated name "ab", then a bogus length.
        let mut attrs = vec![8, 0, 4, 0];
        attrs.extend_from_slice(&1400u32.to_ne_bytes());
        attrs.extend_from_slice(&[7, 0, 3, 0, b'a', b'b', 0, 0]);
        attrs.extend_from_slice(&[200, 0, 1, 0]);
        let found: Vec<_> = Attrs::new(&attrs).map(|(k, v)| (k, v.len())).collect();
        assert_eq!(found, vec![(4, 4), (3, 3)]);
        assert_eq!(c_string(Attrs::new(&attrs).value_of(3).unwrap()), "ab");
        assert_eq!(
            u32_at(Attrs::new(&attrs).value_of(4).unwrap(), 0),
            Some(1400)
        );
        assert!(Attrs::new(&[2, 0, 1, 0]).next().is_none());
    }
}
