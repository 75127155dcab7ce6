//! `access_log.formatter`: the text line laid out with Python logging's %-style
//! placeholders (`%(asctime)s - %(levelname)7s - %(message)s`), parsed once at ignite into
//! pieces that each line walks. `datefmt` is Python's `time.strftime` format for
//! `%(asctime)s`, and is formatted once per second per thread.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

mod datefmt;
mod formatter;
#[cfg(test)]
mod tests;

use datefmt::{parse_datefmt, Civil, DatePiece};
use formatter::parse_formatter;

use super::escape::{capped, escape_into, must_escape, Escaped, MAX_URL, MAX_USER_AGENT};
use super::line::Entry;
use crate::ip_text::IpText;
use crate::rules::Verdict;

/// Flask-Allow's default `formatter`: today's text lines.
pub(crate) const DEFAULT_FORMATTER: &str = "%(asctime)s - %(levelname)7s - %(message)s";

/// The configuration keys errors name.
const FORMATTER_KEY: &str = "access_log.formatter";
const DATEFMT_KEY: &str = "access_log.datefmt";

/// The widest field a placeholder may ask for.
const MAX_WIDTH: usize = 1000;

/// A parsed `formatter`, with its `datefmt` and time zone.
pub(crate) struct Template {
    pieces: Vec<Piece>,
    /// Whether any placeholder needs the time (otherwise the clock is not read).
    uses_time: bool,
    datefmt: Option<Vec<DatePiece>>,
    /// `None`: UTC.
    zone: Option<jiff::tz::TimeZone>,
    /// Tells this template's cached `asctime` from another's on the same thread.
    id: u64,
    /// Bytes a typical line takes, to size the line's buffer once.
    pub size_hint: usize,
}

enum Piece {
    Text(Box<str>),
    Field(Field, Spec),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Asctime,
    Created,
    Msecs,
    Levelname,
    Levelno,
    Name,
    Process,
    Message,
    Client,
    Peer,
    Verdict,
    By,
    Rule,
    RuleIndex,
    Network,
    Policy,
    Status,
    Enforced,
    Method,
    Url,
    UserAgent,
    Note,
}

const FIELDS: &[(&str, Field)] = &[
    ("asctime", Field::Asctime),
    ("created", Field::Created),
    ("msecs", Field::Msecs),
    ("levelname", Field::Levelname),
    ("levelno", Field::Levelno),
    ("name", Field::Name),
    ("process", Field::Process),
    ("message", Field::Message),
    ("client", Field::Client),
    ("peer", Field::Peer),
    ("verdict", Field::Verdict),
    ("by", Field::By),
    ("rule", Field::Rule),
    ("rule_index", Field::RuleIndex),
    ("network", Field::Network),
    ("policy", Field::Policy),
    ("status", Field::Status),
    ("enforced", Field::Enforced),
    ("method", Field::Method),
    ("url", Field::Url),
    ("user_agent", Field::UserAgent),
    ("note", Field::Note),
];

impl Field {
    fn is_number(self) -> bool {
        matches!(
            self,
            Field::Created
                | Field::Msecs
                | Field::Levelno
                | Field::Process
                | Field::RuleIndex
                | Field::Status
        )
    }
}

/// Python's conversion flags, width, precision and conversion.
#[derive(Debug, Clone, Copy, Default)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
    width: usize,
    precision: Option<usize>,
    conv: Conv,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Conv {
    #[default]
    Str,
    Int,
    Float,
}

/// What a line is about: a decision, or one of the writer's own notices.
#[derive(Clone, Copy)]
pub(crate) enum Record<'a> {
    Decision(&'a Entry<'a>),
    Notice { level: &'a str, message: &'a str },
}

/// The time of a line: seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Now {
    pub secs: i64,
    pub nanos: u32,
}

impl Now {
    pub fn get() -> Now {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Now {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(_) => Now::default(),
        }
    }

    /// Python's `record.created`.
    fn created(self) -> f64 {
        self.secs as f64 + f64::from(self.nanos) / 1e9
    }

    /// Python's `record.msecs`: derived from `created` as Python does.
    fn msecs(self) -> f64 {
        let c = self.created();
        ((c - c.trunc()) * 1000.0).trunc()
    }
}

enum Num {
    Int(i64),
    Float(f64),
    Missing,
}

fn err(key: &str, message: String) -> (&str, String) {
    (key, message)
}

/// A character of a template's literal text: anything but a control character (a tab
/// aside), which would let one decision span two lines.
fn plain_char(key: &str, c: char, at: usize) -> Result<(), (&str, String)> {
    if must_escape(c) && c != '\t' {
        return Err(err(
            key,
            format!(
                "control character U+{:04X} at position {at}: one decision must stay one line",
                c as u32
            ),
        ));
    }
    Ok(())
}

impl Template {
    /// Parses `formatter` (default [`DEFAULT_FORMATTER`]) and `datefmt`; `utc = false` takes
    /// the system time zone (`TZ`, else `/etc/localtime`). Errors name the key below `allow`
    /// and say where in the string.
    pub fn parse(
        formatter: Option<&str>,
        datefmt: Option<&str>,
        utc: bool,
    ) -> Result<Template, (&'static str, String)> {
        static IDS: AtomicU64 = AtomicU64::new(1);
        let formatter = formatter.unwrap_or(DEFAULT_FORMATTER);
        let pieces = parse_formatter(formatter)?;
        let datefmt = datefmt.map(parse_datefmt).transpose()?;
        let uses_time = pieces.iter().any(|p| {
            matches!(
                p,
                Piece::Field(Field::Asctime | Field::Created | Field::Msecs, _)
            )
        });
        let size_hint = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Field(Field::Message, _) => 160,
                Piece::Field(Field::Url | Field::UserAgent, _) => 64,
                Piece::Field(_, s) => s.width.max(16),
            })
            .sum::<usize>()
            .max(256);
        Ok(Template {
            pieces,
            uses_time,
            datefmt,
            zone: (!utc).then(jiff::tz::TimeZone::system),
            id: IDS.fetch_add(1, Ordering::Relaxed),
            size_hint,
        })
    }

    /// Appends the line for `record`, newline included, at the current time.
    pub fn render(&self, out: &mut String, record: Record<'_>) {
        let now = if self.uses_time {
            Now::get()
        } else {
            Now::default()
        };
        self.render_at(out, record, now);
    }

    /// [`render`](Self::render) at `now`.
    pub fn render_at(&self, out: &mut String, record: Record<'_>, now: Now) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(field, spec) => {
                    let start = out.len();
                    let number = if field.is_number() {
                        let n = number(*field, record, now);
                        write_number(out, &n, spec);
                        !matches!(n, Num::Missing) && spec.conv != Conv::Str
                    } else {
                        self.text(out, *field, record, now);
                        false
                    };
                    if spec.width > 0 || spec.precision.is_some() {
                        pad(out, start, spec, number);
                    }
                }
            }
        }
        out.push('\n');
    }

    fn text(&self, out: &mut String, field: Field, record: Record<'_>, now: Now) {
        let e = match record {
            Record::Decision(e) => e,
            Record::Notice { level, message } => {
                match field {
                    Field::Asctime => self.asctime(out, now),
                    Field::Levelname => out.push_str(level),
                    Field::Name => out.push_str("rocket_allow"),
                    Field::Message => escape_into(out, message),
                    _ => out.push('-'),
                }
                return;
            }
        };
        match field {
            Field::Asctime => self.asctime(out, now),
            Field::Levelname => out.push_str(e.level.as_str()),
            Field::Name => out.push_str("rocket_allow"),
            Field::Message => e.message(out),
            Field::Client => ip(out, e.client),
            Field::Peer => ip(out, e.peer),
            Field::Verdict => out.push_str(match e.verdict {
                Verdict::Allow => "allow",
                Verdict::Deny => "deny",
            }),
            Field::By => out.push_str(e.by.as_str()),
            Field::Rule => match &e.rule {
                Some(r) => {
                    let _ = write!(Escaped(&mut *out), "{}", r.written);
                }
                None => out.push('-'),
            },
            Field::Network => match &e.rule {
                Some(r) => {
                    let _ = write!(Escaped(&mut *out), "{}", r.normalized);
                }
                None => out.push('-'),
            },
            Field::Policy => escape_into(out, e.policy.unwrap_or("-")),
            Field::Enforced => out.push_str(if e.enforced { "true" } else { "false" }),
            Field::Method => out.push_str(e.method),
            Field::Url => capped(Escaped(&mut *out), MAX_URL, &e.url),
            Field::UserAgent => capped(
                Escaped(&mut *out),
                MAX_USER_AGENT,
                &e.user_agent.unwrap_or("-"),
            ),
            Field::Note => escape_into(out, e.note.unwrap_or("-")),
            _ => unreachable!("numbers are written by write_number"),
        }
    }

    /// `%(asctime)s`: `datefmt`, or RFC 3339 with milliseconds (`Z` in UTC, else the
    /// offset). Formatted once per second per thread; only the milliseconds per line.
    fn asctime(&self, out: &mut String, now: Now) {
        thread_local! {
            static CACHE: RefCell<(u64, i64, String, String)> =
                const { RefCell::new((0, i64::MIN, String::new(), String::new())) };
        }
        CACHE.with(|cell| {
            let mut cache = cell.borrow_mut();
            let (id, secs, head, tail) = &mut *cache;
            if *id != self.id || *secs != now.secs {
                head.clear();
                tail.clear();
                self.second(now.secs, head, tail);
                *id = self.id;
                *secs = now.secs;
            }
            out.push_str(head);
            if self.datefmt.is_none() {
                let ms = now.nanos / 1_000_000;
                out.push('.');
                out.push(char::from(b'0' + (ms / 100) as u8));
                out.push(char::from(b'0' + (ms / 10 % 10) as u8));
                out.push(char::from(b'0' + (ms % 10) as u8));
            }
            out.push_str(tail);
        });
    }

    /// The part of `asctime` that changes once a second: before and after the milliseconds.
    fn second(&self, secs: i64, head: &mut String, tail: &mut String) {
        let ts = jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let (offset, zone) = match &self.zone {
            Some(tz) => {
                let info = tz.to_offset_info(ts);
                (info.offset(), info.abbreviation().to_string())
            }
            // What Python's time.gmtime gives %Z.
            None => (jiff::tz::Offset::UTC, "GMT".to_string()),
        };
        let t = Civil::new(offset.to_datetime(ts), secs, offset.seconds(), &zone);
        match &self.datefmt {
            Some(pieces) => t.strftime(head, pieces),
            None => {
                let _ = write!(
                    head,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    t.year, t.month, t.day, t.hour, t.minute, t.second
                );
                if self.zone.is_none() {
                    tail.push('Z');
                } else {
                    let o = t.offset;
                    let sign = if o < 0 { '-' } else { '+' };
                    let _ = write!(tail, "{sign}{:02}:{:02}", o.abs() / 3600, o.abs() / 60 % 60);
                }
            }
        }
    }
}

fn ip(out: &mut String, ip: Option<std::net::IpAddr>) {
    match ip {
        Some(ip) => {
            let _ = write!(out, "{}", IpText(ip));
        }
        None => out.push('-'),
    }
}

fn level_number(level: &str) -> i64 {
    match level {
        "ERROR" => 40,
        "WARNING" => 30,
        _ => 20,
    }
}

fn number(field: Field, record: Record<'_>, now: Now) -> Num {
    let decision = match record {
        Record::Decision(e) => Some(e),
        Record::Notice { .. } => None,
    };
    match field {
        Field::Created => Num::Float(now.created()),
        Field::Msecs => Num::Float(now.msecs()),
        Field::Process => Num::Int(i64::from(std::process::id())),
        Field::Levelno => Num::Int(level_number(match record {
            Record::Decision(e) => e.level.as_str(),
            Record::Notice { level, .. } => level,
        })),
        Field::RuleIndex => decision
            .and_then(|e| e.rule.map(|r| Num::Int(r.index as i64)))
            .unwrap_or(Num::Missing),
        Field::Status => decision
            .and_then(|e| e.status.map(|s| Num::Int(i64::from(s))))
            .unwrap_or(Num::Missing),
        _ => Num::Missing,
    }
}

/// A number as Python's `%s`, `%d` or `%f` writes it (width and precision of `%s` are
/// applied afterwards by [`pad`]).
fn write_number(out: &mut String, n: &Num, spec: &Spec) {
    let sign = |out: &mut String, negative: bool| {
        if !negative {
            if spec.plus {
                out.push('+');
            } else if spec.space {
                out.push(' ');
            }
        }
    };
    match (n, spec.conv) {
        (Num::Missing, _) => out.push('-'),
        (Num::Int(i), Conv::Str) => {
            let _ = write!(out, "{i}");
        }
        (Num::Float(f), Conv::Str) => {
            // Python's repr: the shortest text that reads back as the same float.
            let start = out.len();
            let _ = write!(out, "{f}");
            if !out[start..].contains(['.', 'e', 'N', 'i']) {
                out.push_str(".0");
            }
        }
        (Num::Int(i), Conv::Int) => {
            sign(out, *i < 0);
            let _ = write!(out, "{i}");
        }
        (Num::Float(f), Conv::Int) => {
            let i = f.trunc() as i64;
            sign(out, i < 0);
            let _ = write!(out, "{i}");
        }
        (Num::Int(_) | Num::Float(_), Conv::Float) => {
            let f = match n {
                Num::Int(i) => *i as f64,
                Num::Float(f) => *f,
                Num::Missing => 0.0,
            };
            sign(out, f.is_sign_negative());
            let p = spec.precision.unwrap_or(6);
            let _ = write!(out, "{f:.p$}");
            if spec.alt && p == 0 {
                out.push('.');
            }
        }
    }
}

/// Applies `%s`'s precision (the most characters kept) and the width, right-aligned unless
/// `-`, zero-padded after the sign for numbers with `0`.
fn pad(out: &mut String, start: usize, spec: &Spec, number: bool) {
    if let (Some(p), false) = (spec.precision, number) {
        if let Some((at, _)) = out[start..].char_indices().nth(p) {
            out.truncate(start + at);
        }
    }
    let len = out[start..].chars().count();
    if len >= spec.width {
        return;
    }
    let n = spec.width - len;
    let (fill, at) = if spec.left {
        (' ', out.len())
    } else if spec.zero && number {
        (
            '0',
            start + usize::from(out[start..].starts_with(['+', '-', ' '])),
        )
    } else {
        (' ', start)
    };
    // Without allocating for the usual widths.
    const SPACES: &str = "                                                                ";
    const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
    let run = if fill == ' ' { SPACES } else { ZEROS };
    match run.get(..n) {
        Some(run) => out.insert_str(at, run),
        None => out.insert_str(at, &fill.to_string().repeat(n)),
    }
}
