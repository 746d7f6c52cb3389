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

    /// An error from errno `errno`, while doing `what`: "what: File exists".
    pub fn errno(code: u32, what: &str, errno: i32) -> Self {
        Self::new(code, join(what, &crate::errno::describe(errno)))
    }
}

fn join(what: &str, cause: &str) -> String {
    let mut msg = String::with_capacity(what.len() + cause.len() + 2);
    msg.push_str(what);
    msg.push_str(": ");
    msg.push_str(cause);
    msg
}

pub type CniResult<T> = Result<T, CniError>;

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
    fn errno_message_names_the_step() {
        let error = CniError::errno(IO_FAILURE, "add route 400::/7 in pod", libc::EEXIST);
        assert_eq!(error.msg, "add route 400::/7 in pod: File exists");
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
