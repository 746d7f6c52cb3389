//! The config keys `logFile` and `logLevel` (named as Multus names them):
//! one line per command, with its duration and outcome, appended to the
//! file in one write. Never on stdout. Only a regular file (or one not there
//! yet) is written, opened without blocking and without following a
//! symbolic link; anything else, or a missing or read-only directory, costs
//! the line and one line on stderr, never the command.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Nothing is written.
    Panic,
    /// Failed commands only.
    Error,
    /// Every command.
    Info,
}

impl Level {
    /// Multus's names; verbose and debug log every command, as info does.
    pub fn parse(text: &str) -> Option<Level> {
        Some(match text {
            "panic" => Level::Panic,
            "error" => Level::Error,
            "info" | "verbose" | "debug" => Level::Info,
            _ => return None,
        })
    }
}

#[cfg_attr(test, derive(Debug))]
pub struct LogFile {
    pub path: String,
    pub level: Level,
}

impl LogFile {
    /// `what` names the attachment or command, `outcome` is "ok" or the error.
    pub fn record(&self, command: &str, what: &str, failed: bool, outcome: &str, took: Duration) {
        if self.level == Level::Panic || (self.level == Level::Error && !failed) {
            return;
        }
        let line = format!(
            "{} {command} {what} {outcome} {}.{:03}ms\n",
            utc_timestamp(SystemTime::now()),
            took.as_millis(),
            took.as_micros() % 1000
        );
        let written = crate::regular_file::open_append(&self.path)
            .and_then(|mut file| Ok(file.write_all(line.as_bytes())?));
        if let Err(error) = written {
            crate::log::line(&format!("logFile {}: {error}; line not written", self.path));
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` without a date crate (days to civil date, after
/// Howard Hinnant's algorithm).
fn utc_timestamp(now: SystemTime) -> String {
    let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        let at = |s: u64| utc_timestamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_000_000), "2026-11-30T00:53:20Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn levels_filter_lines() {
        let dir = std::env::temp_dir().join(format!("mcni-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cni.log").to_string_lossy().into_owned();
        let took = Duration::from_micros(1_420);
        let error_only = LogFile {
            path: path.clone(),
            level: Level::Error,
        };
        error_only.record("ADD", "net/c1/eth0", false, "ok", took);
        error_only.record("ADD", "net/c2/eth0", true, "error 11: down", took);
        let info = LogFile {
            path: path.clone(),
            level: Level::Info,
        };
        info.record("DEL", "net/c1/eth0", false, "ok", took);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(" ADD net/c2/eth0 error 11: down 1.420ms"),
            "{text}"
        );
        assert!(lines[1].ends_with(" DEL net/c1/eth0 ok 1.420ms"), "{text}");
        // A directory that is not there costs the line only.
        let missing = LogFile {
            path: dir.join("no/such/dir/x.log").to_string_lossy().into(),
            level: Level::Info,
        };
        missing.record("ADD", "x", false, "ok", took);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(Level::parse("verbose"), Some(Level::Info));
        assert_eq!(Level::parse("loud"), None);
    }
}
