//! A doctor report: one line per finding, `ok`, `warn` or `FAIL`, each
//! non-ok one with its fix; any FAIL makes the exit code 1.

#[derive(Default)]
pub(super) struct Report {
    text: String,
    failed: bool,
}

impl Report {
    fn line(&mut self, label: &str, finding: &str, fix: &str) {
        self.text.push_str(label);
        self.text.push_str(finding);
        if !fix.is_empty() {
            self.text.push_str("\n      fix: ");
            self.text.push_str(fix);
        }
        self.text.push('\n');
    }

    pub(super) fn ok(&mut self, finding: &str) {
        self.line("ok    ", finding, "");
    }

    pub(super) fn warn(&mut self, finding: &str, fix: &str) {
        self.line("warn  ", finding, fix);
    }

    pub(super) fn fail(&mut self, finding: &str, fix: &str) {
        self.failed = true;
        self.line("FAIL  ", finding, fix);
    }

    pub(super) fn failed(&self) -> bool {
        self.failed
    }

    pub(super) fn into_text(self) -> String {
        self.text
    }
}
