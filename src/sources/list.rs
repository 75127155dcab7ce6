//! List files: one entry a line (an address, a network, `all` or a host name; no `@sets`),
//! `#` comments, blank lines, surrounding white space and a leading UTF-8 byte order mark
//! (as some Windows editors write) ignored. The whole text is parsed
//! before any of it is used, so a file that is half written or has a bad line is refused
//! whole, naming the line.

use crate::rules::Target;

/// Why a list could not be used: the 1-based line number, the line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListError {
    pub line: usize,
    pub text: String,
    pub message: String,
}

/// Parses a list's text into its entries, in order.
pub(crate) fn parse_list(text: &str) -> Result<Vec<Target>, ListError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let entry = raw.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        // A huge line must not become a huge log line.
        let fail = |message: String| ListError {
            line: i + 1,
            text: raw.trim().chars().take(200).collect(),
            message: message.chars().take(300).collect(),
        };
        match Target::parse(entry) {
            Ok(Target::Set(_)) => {
                return Err(fail(
                    "a list file cannot refer to sets; put the entries themselves".into(),
                ))
            }
            Ok(target) => out.push(target),
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_comments_and_blank_lines() {
        let list = parse_list(
            "# Cloudflare\n\n  173.245.48.0/20  \n2400:cb00::/32 # v6\nproxy.example.com\nall\n",
        )
        .unwrap();
        let shown: Vec<String> = list.iter().map(Target::to_string).collect();
        assert_eq!(
            shown,
            [
                "173.245.48.0/20",
                "2400:cb00::/32",
                "proxy.example.com",
                "all"
            ]
        );
    }

    #[test]
    fn a_leading_byte_order_mark_is_not_text() {
        let list = parse_list("\u{feff}192.0.2.1\r\n").unwrap();
        assert_eq!(list, [Target::parse("192.0.2.1").unwrap()]);
        // Only at the start: anywhere else it is a bad line.
        assert_eq!(
            parse_list("192.0.2.1\n\u{feff}192.0.2.2\n")
                .unwrap_err()
                .line,
            2
        );
    }

    #[test]
    fn a_bad_line_is_named() {
        let e = parse_list("10.0.0.1\n\n10.0.0.0/33\n10.0.0.2\n").unwrap_err();
        assert_eq!((e.line, e.text.as_str()), (3, "10.0.0.0/33"));
        assert!(e.message.contains("prefix"), "{}", e.message);
        let e = parse_list("10.0.0.1\n@office\n").unwrap_err();
        assert_eq!(e.line, 2);
        // A line cut short while the file is being written.
        let e = parse_list("10.0.0.1\n192.168.").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
