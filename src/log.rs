//! The plugin's own diagnostics on stderr (the runtime's log); stdout
//! belongs to the CNI result.

/// One line on stderr in one write, so that lines of concurrent runs do not
/// interleave.
pub fn line(text: &str) {
    let mut out = String::with_capacity(text.len() + 15);
    out.push_str("mycelium-cni: ");
    out.push_str(text);
    out.push('\n');
    let _ = std::io::Write::write_all(&mut std::io::stderr(), out.as_bytes());
}
