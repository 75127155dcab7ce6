//! RFC 7239 `Forwarded`: splitting a header line into elements from the right, and
//! reading an element's `for=` node. Only what the walk in [`super`] reaches is parsed.

use std::net::IpAddr;

use super::Node;

/// Splits one header line into elements on commas outside double-quoted strings, from
/// the right. Scanning from the right means a proxy's well-formed elements are read
/// correctly whatever a client wrote to their left; if that left part leaves a quote
/// open, the last item is `None` (unreadable) instead of a guess.
pub(super) fn rsplit_elements(s: &str) -> Vec<Option<&str>> {
    let bytes = s.as_bytes();
    let (mut out, mut end, mut quoted) = (Vec::new(), bytes.len(), false);
    for i in (0..bytes.len()).rev() {
        match bytes[i] {
            b'"' => {
                // A quote preceded by an odd number of backslashes is escaped.
                let slashes = bytes[..i].iter().rev().take_while(|&&b| b == b'\\').count();
                if slashes % 2 == 0 {
                    quoted = !quoted;
                }
            }
            b',' if !quoted => {
                out.push(Some(&s[i + 1..end]));
                end = i;
            }
            _ => {}
        }
    }
    out.push((!quoted).then(|| &s[..end]));
    out
}

/// Splits on `sep` outside double-quoted strings (with `\` escapes). `None` if a quote is unclosed.
fn split_outside_quotes(s: &str, sep: u8) -> Option<Vec<&str>> {
    let bytes = s.as_bytes();
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if !quoted && b == sep {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    if quoted || escaped {
        return None;
    }
    parts.push(&s[start..]);
    Some(parts)
}

/// One RFC 7239 element (`for=...;proto=...;by=...`): its `for` node, if readable.
pub(super) fn parse_forwarded_element(element: &str) -> Option<Node> {
    let element = element.trim_matches([' ', '\t']);
    if element.is_empty() {
        return None;
    }
    let mut node = None;
    for pair in split_outside_quotes(element, b';')? {
        let (name, value) = pair.trim_matches([' ', '\t']).split_once('=')?;
        if !name.eq_ignore_ascii_case("for") {
            continue;
        }
        if node.is_some() {
            return None; // two `for=` in one element: which is meant cannot be known
        }
        node = Some(parse_forwarded_node(&unquote(value)?)?);
    }
    Some(node.unwrap_or(Node::Opaque))
}

/// One RFC 7239 element's `proto=` value (`https`), if it has exactly one readable one.
pub(super) fn forwarded_proto(element: &str) -> Option<String> {
    let mut proto = None;
    for pair in split_outside_quotes(element.trim_matches([' ', '\t']), b';')? {
        let (name, value) = pair.trim_matches([' ', '\t']).split_once('=')?;
        if name.eq_ignore_ascii_case("proto") {
            if proto.is_some() {
                return None;
            }
            proto = Some(unquote(value)?);
        }
    }
    proto
}

/// The value of a parameter: a token, or a quoted string with `\` escapes removed.
fn unquote(value: &str) -> Option<String> {
    match value.strip_prefix('"') {
        None if value.is_empty() || value.contains('"') || value.contains('\\') => None,
        None => Some(value.to_string()),
        Some(rest) => {
            let inner = rest.strip_suffix('"')?;
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' { chars.next()? } else { c });
            }
            Some(out)
        }
    }
}

/// RFC 7239 `node = nodename [ ":" node-port ]`.
fn parse_forwarded_node(node: &str) -> Option<Node> {
    if node.eq_ignore_ascii_case("unknown") {
        return Some(Node::Opaque);
    }
    if let Some(obf) = node.strip_prefix('_') {
        return is_obfuscated(obf).then_some(Node::Opaque);
    }
    let (addr, port) = if let Some(rest) = node.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (IpAddr::V6(v6.parse().ok()?), port)
    } else {
        match node.split_once(':') {
            // A second colon means an unbracketed IPv6 address, which RFC 7239 forbids.
            Some((v4, port)) => (IpAddr::V4(v4.parse().ok()?), Some(port)),
            None => (IpAddr::V4(node.parse().ok()?), None),
        }
    };
    if let Some(port) = port {
        let ok = match port.strip_prefix('_') {
            Some(obf) => is_obfuscated(obf),
            None => {
                (1..=5).contains(&port.len())
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && port.parse::<u16>().is_ok()
            }
        };
        if !ok {
            return None;
        }
    }
    Some(Node::Addr(addr))
}

/// `obfnode`/`obfport` after the underscore: ALPHA / DIGIT / "." / "_" / "-".
fn is_obfuscated(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_split_from_the_right() {
        assert_eq!(
            rsplit_elements(r#"for=a, for="b,c";x="\"", for=d"#),
            vec![Some(" for=d"), Some(r#" for="b,c";x="\"""#), Some("for=a")]
        );
        assert_eq!(
            rsplit_elements(r#"for=", for=d"#),
            vec![Some(" for=d"), None]
        );
    }
}
