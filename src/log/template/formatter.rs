//! Parsing `access_log.formatter`: Python logging's %-style placeholders into pieces.

use super::*;

pub(super) fn parse_formatter(s: &str) -> Result<Vec<Piece>, (&'static str, String)> {
    let key = FORMATTER_KEY;
    let chars: Vec<char> = s.chars().collect();
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        if c != '%' {
            plain_char(key, c, at)?;
            text.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('%') => {
                text.push('%');
                i += 2;
                continue;
            }
            Some('(') => {}
            _ => {
                return Err(err(
                    key,
                    format!(
                        "`%` at position {at} starts no placeholder: write `%%` for a percent \
                         sign, `%(name)s` for a field"
                    ),
                ))
            }
        }
        let Some(close) = chars[i + 2..].iter().position(|&c| c == ')') else {
            return Err(err(
                key,
                format!("`%(` at position {at} has no closing `)`"),
            ));
        };
        let name: String = chars[i + 2..i + 2 + close].iter().collect();
        let mut j = i + 3 + close;
        let mut spec = Spec::default();
        while let Some(&c) = chars.get(j) {
            match c {
                '-' => spec.left = true,
                '0' => spec.zero = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '#' => spec.alt = true,
                _ => break,
            }
            j += 1;
        }
        let digits = |j: &mut usize| -> Option<usize> {
            let from = *j;
            while chars.get(*j).is_some_and(char::is_ascii_digit) {
                *j += 1;
            }
            (from < *j).then(|| {
                chars[from..*j].iter().fold(0usize, |n, d| {
                    n.saturating_mul(10)
                        .saturating_add(*d as usize - '0' as usize)
                })
            })
        };
        let placeholder =
            |j: usize| -> String { chars[i..(j + 1).min(chars.len())].iter().collect() };
        spec.width = digits(&mut j).unwrap_or(0);
        if chars.get(j) == Some(&'.') {
            j += 1;
            spec.precision = Some(digits(&mut j).unwrap_or(0));
        }
        if spec.width > MAX_WIDTH || spec.precision.is_some_and(|p| p > MAX_WIDTH) {
            return Err(err(
                key,
                format!(
                    "`{}` at position {at}: width and precision are at most {MAX_WIDTH}",
                    placeholder(j)
                ),
            ));
        }
        spec.conv = match chars.get(j) {
            Some('s') => Conv::Str,
            Some('d' | 'i') => Conv::Int,
            Some('f' | 'F') => Conv::Float,
            None => {
                return Err(err(
                    key,
                    format!(
                    "`{}` at position {at} has no conversion letter (such as `s` in `%({name})s`)",
                    placeholder(j)
                ),
                ))
            }
            Some('*') => {
                return Err(err(
                    key,
                    format!(
                        "`*` in `{}` at position {at}: write the width or precision as a number",
                        placeholder(j)
                    ),
                ))
            }
            Some(&c) if c.is_ascii_alphabetic() => {
                return Err(err(
                    key,
                    format!(
                        "conversion `{c}` in `{}` at position {at} is not supported: use `s`, \
                         `d`, `i` or `f`",
                        placeholder(j)
                    ),
                ))
            }
            Some(&c) => {
                return Err(err(
                    key,
                    format!(
                        "`{c}` in `{}` at position {at} is not a flag: after `%(name)` come flags \
                         (`-`, `0`, `+`, space, `#`), a width, `.precision` and a conversion \
                         letter (`s`, `d`, `i`, `f`)",
                        placeholder(j)
                    ),
                ))
            }
        };
        let Some(&(_, field)) = FIELDS.iter().find(|(n, _)| *n == name) else {
            let known: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
            return Err(err(
                key,
                format!(
                    "unknown placeholder `{}` at position {at}; the placeholders are {}",
                    placeholder(j),
                    known.join(", ")
                ),
            ));
        };
        if spec.conv != Conv::Str && !field.is_number() {
            return Err(err(
                key,
                format!(
                    "`{}` at position {at}: `{name}` is text: use `s`",
                    placeholder(j)
                ),
            ));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text).into()));
        }
        pieces.push(Piece::Field(field, spec));
        i = j + 1;
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text.into()));
    }
    if !pieces.iter().any(|p| matches!(p, Piece::Field(..))) {
        return Err(err(
            key,
            format!("`{s}` has no placeholder (such as `%(message)s`)"),
        ));
    }
    Ok(pieces)
}
