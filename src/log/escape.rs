//! Request text (paths, user agents, host names) escaped for a log line, so that a client
//! cannot forge lines or hide text; and capped, so that it cannot make them huge.

use std::fmt::{self, Write as _};

/// Characters a log reader may take as a line break, or that reorder what is shown:
/// control characters (CR, LF, ESC, NEL...), U+2028/U+2029, and the bidi controls.
pub(super) fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The most bytes of a request's URL a line keeps; the rest is cut, and the field says how
/// many bytes were (a 390 KB URL must not make a 390 KB line).
pub(super) const MAX_URL: usize = 4096;
/// The same for the user agent.
pub(super) const MAX_USER_AGENT: usize = 1024;

/// Writes `value` into `out`, at most `max` bytes of it (cut at a character boundary),
/// then `…[N bytes cut]` if anything was cut.
pub(super) fn capped<W: fmt::Write>(mut out: W, max: usize, value: &dyn fmt::Display) {
    let mut cap = Cap {
        out: &mut out,
        room: max,
        cut: 0,
    };
    let _ = write!(cap, "{value}");
    let cut = cap.cut;
    if cut > 0 {
        let _ = write!(out, "…[{cut} bytes cut]");
    }
}

/// A `fmt::Write` that passes on the first `room` bytes and counts the rest.
struct Cap<'a, W: fmt::Write> {
    out: &'a mut W,
    room: usize,
    cut: usize,
}

impl<W: fmt::Write> fmt::Write for Cap<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() <= self.room {
            self.room -= s.len();
            return self.out.write_str(s);
        }
        let mut end = self.room;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.room = 0;
        self.cut += s.len() - end;
        self.out.write_str(&s[..end])
    }
}

/// A value displayed with [`capped`]'s limit and marker.
pub(super) struct Capped<'a>(pub(super) usize, pub(super) &'a dyn fmt::Display);

impl fmt::Display for Capped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        capped(f, self.0, self.1);
        Ok(())
    }
}

/// Characters that [`must_escape`] become `\u{..}` so one request is one line.
pub(super) fn escape_into(out: &mut String, s: &str) {
    let _ = Escaped(out).write_str(s);
}

/// A `fmt::Write` that escapes control characters on the way into the line.
pub(super) struct Escaped<W: fmt::Write>(pub(super) W);

impl<W: fmt::Write> fmt::Write for Escaped<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Runs of plain text are copied whole; most request text has nothing to escape.
        let mut plain = 0;
        let mut rest = s;
        while let Some((at, c)) = next_special(s, rest, false) {
            self.0.write_str(&s[plain..at])?;
            write!(self.0, "{}", c.escape_unicode())?;
            plain = at + c.len_utf8();
            rest = &s[plain..];
        }
        self.0.write_str(&s[plain..])
    }
}

/// The next character at or after `rest` (a tail of `s`) that must be escaped, and where it
/// is in `s`: a [`must_escape`] character, and for JSON `"` and `\\` too. Scans bytes, and
/// decodes a character only where a byte is not plain ASCII.
fn next_special(s: &str, rest: &str, json: bool) -> Option<(usize, char)> {
    let start = s.len() - rest.len();
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            if b < 0x20 || b == 0x7f || (json && (b == b'"' || b == b'\\')) {
                return Some((start + i, b as char));
            }
            i += 1;
        } else {
            let c = rest[i..].chars().next()?;
            if must_escape(c) {
                return Some((start + i, c));
            }
            i += c.len_utf8();
        }
    }
    None
}

/// A `fmt::Write` that escapes text for the inside of a JSON string: `"`, `\\`, control
/// characters and the other [`must_escape`] characters.
pub(super) struct JsonEscaped<'a>(pub(super) &'a mut String);

impl fmt::Write for JsonEscaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        let mut rest = s;
        while let Some((at, c)) = next_special(s, rest, true) {
            self.0.push_str(&s[plain..at]);
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                _ => {
                    let _ = write!(self.0, "\\u{:04x}", c as u32);
                }
            }
            plain = at + c.len_utf8();
            rest = &s[plain..];
        }
        self.0.push_str(&s[plain..]);
        Ok(())
    }
}

/// `s` as a JSON string, quoted and escaped.
pub(super) fn json_str(out: &mut String, s: &str) {
    out.push('"');
    let _ = JsonEscaped(out).write_str(s);
    out.push('"');
}

/// Displays a value with [`must_escape`] characters escaped (for tracing fields: request
/// text, and the message of a change, which holds ban reasons and `acting_as` names).
pub(crate) struct EscapedDisplay<'a, T: fmt::Display>(pub(crate) &'a T);

impl<T: fmt::Display> fmt::Display for EscapedDisplay<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaped(f), "{}", self.0)
    }
}
