//! CNI error documents: a spec code, a message with its context chain, details.

pub const INCOMPATIBLE_VERSION: u32 = 1;
pub const UNSUPPORTED_FIELD: u32 = 2;
pub const INVALID_ENV: u32 = 4;
pub const IO_FAILURE: u32 = 5;
pub const DECODE_FAILURE: u32 = 6;
pub const INVALID_CONFIG: u32 = 7;
pub const TRY_AGAIN_LATER: u32 = 11;
pub const STATUS_NOT_AVAILABLE: u32 = 50;
/// The plugin's own codes (100+).
pub const INTERFACE_EXISTS: u32 = 100;
pub const NO_FREE_ADDRESS: u32 = 101;
pub const CHECK_FAILED: u32 = 102;
/// A requested address (`runtimeConfig.ips`, `IP=`) another attachment holds.
pub const ADDRESS_TAKEN: u32 = 103;

use std::fmt::Display;

#[derive(Debug, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }
}

pub type CniResult<T> = Result<T, CniError>;

/// The one way to give a failure its context: `.wrap("add route 400::/7 in
/// pod")` turns any displayable cause (an errno, a netlink error) into
/// "add route 400::/7 in pod: File exists" with code 5; `wrap_as` picks
/// another code. `what` may be `format_args!`, formatted only on failure.
pub trait Wrap<T> {
    fn wrap(self, what: impl Display) -> CniResult<T>;
    fn wrap_as(self, code: u32, what: impl Display) -> CniResult<T>;
}

impl<T, E: Display> Wrap<T> for Result<T, E> {
    fn wrap(self, what: impl Display) -> CniResult<T> {
        self.wrap_as(IO_FAILURE, what)
    }

    fn wrap_as(self, code: u32, what: impl Display) -> CniResult<T> {
        self.map_err(|cause| caused(code, &what, &cause))
    }
}

/// Not generic, so that every `wrap` shares one copy of the formatting.
fn caused(code: u32, what: &dyn Display, cause: &dyn Display) -> CniError {
    CniError::new(code, format!("{what}: {cause}"))
}

impl CniError {
    /// The error document printed on stdout.
    pub fn to_json(&self, cni_version: &str) -> String {
        let mut document =
            serde_json::json!({ "cniVersion": cni_version, "code": self.code, "msg": self.msg });
        if let (false, Some(object)) = (self.details.is_empty(), document.as_object_mut()) {
            object.insert("details".into(), self.details.as_str().into());
        }
        document.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_errno_names_the_step() {
        let failed: Result<(), _> = Err(crate::errno::Errno(libc::EEXIST));
        let error = failed.wrap("add route 400::/7 in pod").unwrap_err();
        assert_eq!(error.msg, "add route 400::/7 in pod: File exists");
        assert_eq!(error.code, IO_FAILURE);
        let failed: Result<(), _> = Err(crate::errno::Errno(libc::ENOENT));
        let error = failed
            .wrap_as(INVALID_ENV, format_args!("open CNI_NETNS {}", "/x"))
            .unwrap_err();
        assert_eq!(
            (error.code, error.msg.as_str()),
            (INVALID_ENV, "open CNI_NETNS /x: No such file or directory")
        );
    }

    #[test]
    fn document_has_spec_fields() {
        let mut error = CniError::new(INVALID_CONFIG, "bad");
        assert_eq!(
            error.to_json("1.0.0"),
            r#"{"cniVersion":"1.0.0","code":7,"msg":"bad"}"#
        );
        error.details = "more".into();
        let expected = r#"{"cniVersion":"1.0.0","code":7,"details":"more","msg":"bad"}"#;
        assert_eq!(error.to_json("1.0.0"), expected);
    }
}
