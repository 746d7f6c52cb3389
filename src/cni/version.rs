//! The spec versions this plugin speaks, oldest first.

use super::error::{CniError, CniResult, INCOMPATIBLE_VERSION};

pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
pub const LATEST: &str = "1.1.0";

fn rank(version: &str) -> Option<usize> {
    SUPPORTED.iter().position(|v| *v == version)
}

/// The spec's rule: an exact string match against `SUPPORTED`.
pub fn check_supported(version: &str) -> CniResult<()> {
    match rank(version) {
        Some(_) => Ok(()),
        None => Err(CniError::new(
            INCOMPATIBLE_VERSION,
            format!(
                "incompatible CNI version {version:?}: supported are {}",
                SUPPORTED.join(", ")
            ),
        )),
    }
}

/// True when `version` is `minimum` or newer (both supported).
pub fn at_least(version: &str, minimum: &str) -> bool {
    matches!((rank(version), rank(minimum)), (Some(v), Some(m)) if v >= m)
}

/// `{"cniVersion", "supportedVersions"}` for the VERSION command, written
/// out: runtimes call VERSION before every command, and a literal keeps
/// JSON building out of that path (a test checks it against `SUPPORTED`).
pub const VERSION_JSON: &str =
    r#"{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_match_only() {
        assert!(check_supported("1.0.0").is_ok());
        for bad in ["1.0", "0.2.0", "1.0.0 ", "", "2.0.0"] {
            assert_eq!(
                check_supported(bad).unwrap_err().code,
                INCOMPATIBLE_VERSION,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ordering() {
        assert!(at_least("1.1.0", "0.4.0"));
        assert!(at_least("0.4.0", "0.4.0"));
        assert!(!at_least("0.3.1", "0.4.0"));
        assert!(!at_least("9.9.9", "0.4.0"));
    }

    #[test]
    fn version_document_matches_the_list() {
        let built = serde_json::json!({ "cniVersion": LATEST, "supportedVersions": SUPPORTED });
        let literal: serde_json::Value = serde_json::from_str(VERSION_JSON).unwrap();
        assert_eq!(literal, built);
    }
}
