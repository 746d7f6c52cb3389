//! One netlink socket type per namespace and protocol, one request/reply
//! path.
//!
//! What netlink-packet-route (NPR) does here, and what it does not:
//! - its header structs and typed flags (`LinkHeader`, `RouteHeader`,
//!   `AddressHeader`, `LinkFlags`, `RouteProtocol`, ...) build every
//!   rtnetlink header, and `AddressMessage` builds address requests and
//!   reads address dumps;
//! - route and link attributes stay hand-built (`attrs::Body`) and
//!   hand-walked (`reply`). NPR's route and link attribute enums carry
//!   parsers and emitters for everything the kernel has (lwtunnel, MPLS,
//!   every link-info kind): measured on x86_64 / aarch64, `RouteMessage`
//!   emit+parse costs +60,192 / +49,712 bytes and `LinkMessage` emit alone
//!   +111,200 / +83,712, against +14,048 / +11,856 for the headers and
//!   `AddressMessage`. The differential tests (`npr_diff.rs`) parse every
//!   request we build back through NPR, and read every reply of the fuzz
//!   corpus through both, so the hand-built parts cannot drift.
//! - NPR keeps the `RTM_*`/`IFLA_*`/`RTA_*` numbers private: they come from
//!   `libc`; the few libc lacks are local constants named as in the kernel
//!   headers.

pub mod address;
pub mod attrs;
pub mod link;
pub mod nft_expr;
pub mod nft_set;
pub mod nftables;
pub mod reply;
pub mod route;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod golden_nft;
#[cfg(test)]
mod npr_diff;

use attrs::Body;
use netlink_packet_core::{
    Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR,
    NetlinkHeader,
};
use netlink_sys::Socket;
use netlink_sys::protocols::{NETLINK_NETFILTER, NETLINK_ROUTE};
use reply::{Attrs, Message};

/// A failed netlink call: the errno and the kernel's extended-ack text.
#[derive(Debug, PartialEq, Eq)]
pub struct NlError {
    pub errno: i32,
    pub kernel_msg: String,
}

impl NlError {
    pub fn from_errno(errno: i32) -> Self {
        NlError {
            errno,
            kernel_msg: String::new(),
        }
    }

    fn last_os() -> Self {
        Self::from_errno(crate::errno::Errno::last().0)
    }

    fn protocol() -> Self {
        NlError {
            errno: libc::EPROTO,
            kernel_msg: "malformed netlink reply".into(),
        }
    }

    fn too_large() -> Self {
        NlError {
            errno: libc::EMSGSIZE,
            kernel_msg: "an attribute of the request is over 65,535 bytes".into(),
        }
    }

    fn interrupted() -> Self {
        NlError {
            errno: libc::EINTR,
            kernel_msg: "dump interrupted by changes, 5 times in a row".into(),
        }
    }
}

impl std::fmt::Display for NlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&crate::errno::Errno(self.errno), f)?;
        if !self.kernel_msg.is_empty() {
            write!(f, " ({})", self.kernel_msg)?;
        }
        Ok(())
    }
}

pub type NlResult<T> = Result<T, NlError>;

/// One object of a dump: its message type and body (after the header).
pub struct Object {
    pub kind: u16,
    pub body: Vec<u8>,
}

const RECV_BUF_LEN: usize = 32 * 1024;
/// `enum nlmsgerr_attrs` in linux/netlink.h (not in libc).
const NLMSGERR_ATTR_MSG: u16 = 1;
/// A dump the kernel marks NLM_F_DUMP_INTR (the table changed while it was
/// read) is read again, this many times at most.
const DUMP_ATTEMPTS: u32 = 5;

/// Builds one request: a netlink header followed by the payload. A payload
/// with an attribute that did not fit (`Body::fits`) is refused.
pub fn build(message_type: u16, flags: u16, sequence: u32, payload: &Body) -> NlResult<Vec<u8>> {
    if !payload.fits() {
        return Err(NlError::too_large());
    }
    let mut header = NetlinkHeader::default();
    header.length = (16 + payload.buffer_len()) as u32;
    header.message_type = message_type;
    header.flags = flags | NLM_F_REQUEST;
    header.sequence_number = sequence;
    let mut bytes = vec![0u8; header.length as usize];
    let (head, body) = bytes.split_at_mut(reply::HEADER_LEN);
    header.emit(head);
    payload.emit(body);
    Ok(bytes)
}

pub struct Netlink {
    socket: Socket,
    sequence: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens an rtnetlink socket in the calling thread's current network
    /// namespace.
    pub fn open() -> NlResult<Self> {
        Self::open_protocol(NETLINK_ROUTE)
    }

    /// Opens a NETLINK_NETFILTER socket (nf_tables), likewise.
    pub fn open_netfilter() -> NlResult<Self> {
        Self::open_protocol(NETLINK_NETFILTER)
    }

    fn open_protocol(protocol: isize) -> NlResult<Self> {
        let mut socket = Socket::new(protocol).map_err(|_| NlError::last_os())?;
        socket.bind_auto().map_err(|_| NlError::last_os())?;
        // Extended ACKs carry the kernel's own message; capped ACKs do not
        // echo the request; strict checking makes the kernel filter dumps
        // by the header fields we set (link index, table).
        socket.set_ext_ack(true).map_err(|_| NlError::last_os())?;
        socket.set_cap_ack(true).map_err(|_| NlError::last_os())?;
        socket
            .set_netlink_get_strict_chk(true)
            .map_err(|_| NlError::last_os())?;
        Ok(Netlink {
            socket,
            sequence: 0,
            buf: Vec::with_capacity(RECV_BUF_LEN),
        })
    }

    fn next_sequence(&mut self) -> u32 {
        self.sequence = self.sequence.wrapping_add(1);
        self.sequence
    }

    /// Sends a request that changes something and waits for its ACK.
    pub fn change(&mut self, message_type: u16, flags: u16, payload: &Body) -> NlResult<()> {
        self.exchange(message_type, flags | NLM_F_ACK, payload, &mut |_| Ok(()))
            .map(|_| ())
    }

    /// Sends a GET for one object and returns a copy of its reply.
    pub fn get(&mut self, message_type: u16, payload: &Body) -> NlResult<Vec<u8>> {
        let mut found = None;
        self.exchange(message_type, NLM_F_ACK, payload, &mut |message| {
            found = Some(message.body.to_vec());
            Ok(())
        })?;
        found.ok_or_else(NlError::protocol)
    }

    /// Sends a dump request and returns every object of the reply, each
    /// as its message type and body. A dump the kernel marks interrupted
    /// (NLM_F_DUMP_INTR: the objects changed while it was read) is read
    /// again, up to DUMP_ATTEMPTS times.
    pub fn dump(&mut self, message_type: u16, payload: &Body) -> NlResult<Vec<Object>> {
        for _ in 0..DUMP_ATTEMPTS {
            let mut objects = Vec::new();
            let interrupted = self.exchange(message_type, NLM_F_DUMP, payload, &mut |message| {
                objects.push(Object {
                    kind: message.kind,
                    body: message.body.to_vec(),
                });
                Ok(())
            })?;
            if !interrupted {
                return Ok(objects);
            }
        }
        Err(NlError::interrupted())
    }

    /// One request and its replies; true when a reply was flagged
    /// NLM_F_DUMP_INTR.
    fn exchange(
        &mut self,
        message_type: u16,
        flags: u16,
        payload: &Body,
        each: &mut dyn FnMut(&Message) -> NlResult<()>,
    ) -> NlResult<bool> {
        let sequence = self.next_sequence();
        let request = build(message_type, flags, sequence, payload)?;
        self.send_and_receive(&request, sequence, each)
    }

    /// The request/reply loop itself, not generic: one copy in the binary
    /// for every message type.
    fn send_and_receive(
        &mut self,
        request: &[u8],
        sequence: u32,
        each: &mut dyn FnMut(&Message) -> NlResult<()>,
    ) -> NlResult<bool> {
        self.send_datagram(request)?;
        let mut interrupted = false;
        loop {
            self.buf.clear();
            self.socket
                .recv(&mut self.buf, 0)
                .map_err(|_| NlError::last_os())?;
            for message in reply::Messages::new(&self.buf) {
                let message = message.ok_or_else(NlError::protocol)?;
                if message.sequence != sequence {
                    continue;
                }
                interrupted |= message.flags & NLM_F_DUMP_INTR != 0;
                match message.kind {
                    NLMSG_ERROR => return ack_result(&message).map(|()| interrupted),
                    NLMSG_DONE => return done_result(&message).map(|()| interrupted),
                    _ => each(&message)?,
                }
            }
        }
    }
}

impl Netlink {
    fn send_datagram(&mut self, datagram: &[u8]) -> NlResult<()> {
        self.socket
            .send(datagram, 0)
            .map_err(|_| NlError::last_os())?;
        Ok(())
    }

    /// Makes the send buffer at least `len` bytes: SO_SNDBUFFORCE (root, as
    /// nf_tables needs anyway) goes past net.core.wmem_max, which a batch of
    /// many set elements can exceed.
    fn fit_send_buffer(&mut self, len: usize) -> NlResult<()> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.socket);
        let Ok(size) = libc::c_int::try_from(len) else {
            return Err(NlError::too_large());
        };
        for option in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
            // SAFETY: passes a pointer to a live c_int with its exact size.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    option,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                return Ok(());
            }
        }
        Err(NlError::last_os())
    }

    /// Reads one datagram into the buffer if one is queued; false when none is.
    fn receive_pending(&mut self) -> NlResult<bool> {
        self.buf.clear();
        match self.socket.recv(&mut self.buf, libc::MSG_DONTWAIT) {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(_) => Err(NlError::last_os()),
        }
    }
}

/// The kernel sends `-errno`; anything else (i32::MIN, a positive value) is
/// a malformed reply, not a reason to overflow.
fn positive_errno(raw: i32) -> i32 {
    raw.checked_neg()
        .filter(|errno| *errno > 0)
        .unwrap_or(libc::EPROTO)
}

/// NLMSG_ERROR carries a negative errno (0 for an ACK), the request's header
/// (capped ACK), then extended-ack attributes.
pub(crate) fn ack_result(message: &Message) -> NlResult<()> {
    let errno = reply::i32_at(message.body, 0).ok_or_else(NlError::protocol)?;
    if errno == 0 {
        return Ok(());
    }
    let mut error = NlError::from_errno(positive_errno(errno));
    let tlvs = message.body.get(4 + reply::HEADER_LEN..).unwrap_or(&[]);
    if let Some(text) = Attrs::new(tlvs).value_of(NLMSGERR_ATTR_MSG) {
        error.kernel_msg = reply::c_string(text);
    }
    Err(error)
}

/// NLMSG_DONE carries an int: 0, or a negative errno when the dump failed.
pub(crate) fn done_result(message: &Message) -> NlResult<()> {
    match reply::i32_at(message.body, 0) {
        Some(errno) if errno < 0 => Err(NlError::from_errno(positive_errno(errno))),
        _ => Ok(()),
    }
}
