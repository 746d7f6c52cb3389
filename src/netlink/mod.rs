//! One rtnetlink socket per namespace, one request/reply path.
//!
//! Requests are built by hand (`attrs`) and replies walked by hand
//! (`reply`): netlink-packet-route's typed messages link in an emitter and a
//! parser for every attribute the kernel has (its LinkMessage emitter alone
//! was 30 KB of our binary).

pub mod address;
pub mod attrs;
pub mod link;
pub mod nft_expr;
pub mod nftables;
pub mod reply;
pub mod route;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod golden_nft;

use netlink_packet_core::{
    Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NetlinkHeader,
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

const RECV_BUF_LEN: usize = 32 * 1024;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_GET_STRICT_CHK: libc::c_int = 12;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Builds one request: a netlink header followed by the emitted payload.
pub fn build(message_type: u16, flags: u16, sequence: u32, payload: &dyn Emitable) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.length = (16 + payload.buffer_len()) as u32;
    header.message_type = message_type;
    header.flags = flags | NLM_F_REQUEST;
    header.sequence_number = sequence;
    let mut bytes = vec![0u8; header.length as usize];
    let (head, body) = bytes.split_at_mut(reply::HEADER_LEN);
    header.emit(head);
    payload.emit(body);
    bytes
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
        let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
        for option in [NETLINK_EXT_ACK, NETLINK_CAP_ACK, NETLINK_GET_STRICT_CHK] {
            set_option(fd, option)?;
        }
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
    pub fn change(
        &mut self,
        message_type: u16,
        flags: u16,
        payload: &dyn Emitable,
    ) -> NlResult<()> {
        self.exchange(message_type, flags | NLM_F_ACK, payload, &mut |_| Ok(()))
    }

    /// Sends a GET for one object and returns a copy of its reply.
    pub fn get(&mut self, message_type: u16, payload: &dyn Emitable) -> NlResult<Vec<u8>> {
        let mut found = None;
        self.exchange(message_type, NLM_F_ACK, payload, &mut |message| {
            found = Some(message.body.to_vec());
            Ok(())
        })?;
        found.ok_or_else(NlError::protocol)
    }

    /// Sends a dump request and calls `each` with every object in the reply.
    pub fn dump(
        &mut self,
        message_type: u16,
        payload: &dyn Emitable,
        each: &mut dyn FnMut(&Message) -> NlResult<()>,
    ) -> NlResult<()> {
        self.exchange(message_type, NLM_F_DUMP, payload, each)
    }

    fn exchange(
        &mut self,
        message_type: u16,
        flags: u16,
        payload: &dyn Emitable,
        each: &mut dyn FnMut(&Message) -> NlResult<()>,
    ) -> NlResult<()> {
        let sequence = self.next_sequence();
        self.send_and_receive(
            &build(message_type, flags, sequence, payload),
            sequence,
            each,
        )
    }

    /// The request/reply loop itself, not generic: one copy in the binary
    /// for every message type.
    fn send_and_receive(
        &mut self,
        request: &[u8],
        sequence: u32,
        each: &mut dyn FnMut(&Message) -> NlResult<()>,
    ) -> NlResult<()> {
        self.send_datagram(request)?;
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
                match message.kind {
                    NLMSG_ERROR => return ack_result(&message),
                    NLMSG_DONE => return done_result(&message),
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

fn set_option(fd: libc::c_int, option: libc::c_int) -> NlResult<()> {
    let on: libc::c_int = 1;
    // SAFETY: passes a pointer to a live c_int with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            SOL_NETLINK,
            option,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(NlError::last_os())
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
