//! How an error is told: its message and its sources' messages, one line, for logs, reports
//! and other errors' messages. The one error-chain printer.

/// An error's message and its sources' messages, joined with `: `.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_is_told_once() {
        let inner = std::io::Error::other("connection reset");
        let outer = std::io::Error::other(inner);
        // io::Error's own message already repeats its source's: said once.
        assert_eq!(error_chain(&outer), "connection reset");
        let e = anyhow::anyhow!("connection reset").context("listing users");
        let e: &(dyn std::error::Error + 'static) = e.as_ref();
        assert_eq!(error_chain(e), "listing users: connection reset");
    }
}
