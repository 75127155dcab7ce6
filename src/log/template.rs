//! `access_log.formatter`: the text line laid out with Python logging's %-style
//! placeholders (`%(asctime)s - %(levelname)7s - %(message)s`), parsed once at ignite into
//! pieces that each line walks. `datefmt` is Python's `time.strftime` format for
//! `%(asctime)s`, and is formatted once per second per thread.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::line::{capped, escape_into, must_escape, Entry, Escaped, MAX_URL, MAX_USER_AGENT};
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

fn parse_formatter(s: &str) -> Result<Vec<Piece>, (&'static str, String)> {
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

enum DatePiece {
    Text(String),
    Directive(char),
}

/// The `time.strftime` directives `datefmt` may use (glibc's, C locale), less `%n`.
const DIRECTIVES: &str = "aAbBcCdDeFgGhHIjklmMpPrRsStTuUVwWxXyYzZ%";

fn parse_datefmt(s: &str) -> Result<Vec<DatePiece>, (&'static str, String)> {
    let key = DATEFMT_KEY;
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = s.chars().enumerate();
    while let Some((i, c)) = chars.next() {
        let at = i + 1;
        if c != '%' {
            plain_char(key, c, at)?;
            text.push(c);
            continue;
        }
        match chars.next() {
            Some((_, '%')) => text.push('%'),
            Some((_, d)) if DIRECTIVES.contains(d) => {
                if !text.is_empty() {
                    pieces.push(DatePiece::Text(std::mem::take(&mut text)));
                }
                pieces.push(DatePiece::Directive(d));
            }
            Some((_, 'n')) => {
                return Err(err(
                    key,
                    format!("`%n` at position {at} would break the line in two"),
                ))
            }
            Some((_, 'f')) => {
                return Err(err(
                    key,
                    format!(
                        "`%f` at position {at}: Python's time.strftime has no fractions of a \
                         second (it writes `%f` as is); for milliseconds put `%(msecs)03d` in \
                         the formatter, as in `%(asctime)s,%(msecs)03d`"
                    ),
                ))
            }
            Some((_, d)) => {
                return Err(err(
                    key,
                    format!("unknown directive `%{d}` at position {at}"),
                ))
            }
            None => {
                return Err(err(
                    key,
                    format!("`%` at position {at} ends the datefmt: write `%%` for a percent sign"),
                ))
            }
        }
    }
    if !text.is_empty() {
        pieces.push(DatePiece::Text(text));
    }
    Ok(pieces)
}

/// One second, broken down.
struct Civil<'a> {
    year: i64,
    month: usize,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    /// 0 = Sunday.
    weekday: i64,
    /// 1 = January 1.
    yday: i64,
    iso_year: i64,
    iso_week: i64,
    epoch: i64,
    offset: i32,
    zone: &'a str,
}

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl<'a> Civil<'a> {
    fn new(dt: jiff::civil::DateTime, epoch: i64, offset: i32, zone: &'a str) -> Civil<'a> {
        let iso = dt.date().iso_week_date();
        Civil {
            year: i64::from(dt.year()),
            month: dt.month() as usize,
            day: i64::from(dt.day()),
            hour: i64::from(dt.hour()),
            minute: i64::from(dt.minute()),
            second: i64::from(dt.second()),
            weekday: i64::from(dt.weekday().to_sunday_zero_offset()),
            yday: i64::from(dt.day_of_year()),
            iso_year: i64::from(iso.year()),
            iso_week: i64::from(iso.week()),
            epoch,
            offset,
            zone,
        }
    }

    fn strftime(&self, out: &mut String, pieces: &[DatePiece]) {
        for p in pieces {
            match p {
                DatePiece::Text(t) => out.push_str(t),
                DatePiece::Directive(d) => self.directive(out, *d),
            }
        }
    }

    fn directive(&self, out: &mut String, d: char) {
        let hour12 = if self.hour % 12 == 0 {
            12
        } else {
            self.hour % 12
        };
        let _ = match d {
            'a' => write!(out, "{}", &DAYS[self.weekday as usize][..3]),
            'A' => write!(out, "{}", DAYS[self.weekday as usize]),
            'b' | 'h' => write!(out, "{}", &MONTHS[self.month - 1][..3]),
            'B' => write!(out, "{}", MONTHS[self.month - 1]),
            'c' => {
                for d in ['a', ' ', 'b', ' ', 'e', ' ', 'T', ' ', 'Y'] {
                    if d == ' ' {
                        out.push(' ');
                    } else {
                        self.directive(out, d);
                    }
                }
                Ok(())
            }
            'C' => write!(out, "{:02}", self.year.div_euclid(100)),
            'd' => write!(out, "{:02}", self.day),
            'D' | 'x' => write!(
                out,
                "{:02}/{:02}/{:02}",
                self.month,
                self.day,
                self.year.rem_euclid(100)
            ),
            'e' => write!(out, "{:2}", self.day),
            'F' => write!(out, "{}-{:02}-{:02}", self.year, self.month, self.day),
            'g' => write!(out, "{:02}", self.iso_year.rem_euclid(100)),
            'G' => write!(out, "{}", self.iso_year),
            'H' => write!(out, "{:02}", self.hour),
            'I' => write!(out, "{hour12:02}"),
            'j' => write!(out, "{:03}", self.yday),
            'k' => write!(out, "{:2}", self.hour),
            'l' => write!(out, "{hour12:2}"),
            'm' => write!(out, "{:02}", self.month),
            'M' => write!(out, "{:02}", self.minute),
            'p' => write!(out, "{}", if self.hour < 12 { "AM" } else { "PM" }),
            'P' => write!(out, "{}", if self.hour < 12 { "am" } else { "pm" }),
            'r' => write!(
                out,
                "{hour12:02}:{:02}:{:02} {}",
                self.minute,
                self.second,
                if self.hour < 12 { "AM" } else { "PM" }
            ),
            'R' => write!(out, "{:02}:{:02}", self.hour, self.minute),
            's' => write!(out, "{}", self.epoch),
            'S' => write!(out, "{:02}", self.second),
            't' => write!(out, "\t"),
            'T' | 'X' => write!(
                out,
                "{:02}:{:02}:{:02}",
                self.hour, self.minute, self.second
            ),
            'u' => write!(out, "{}", if self.weekday == 0 { 7 } else { self.weekday }),
            'U' => write!(out, "{:02}", (self.yday - 1 + 7 - self.weekday) / 7),
            'V' => write!(out, "{:02}", self.iso_week),
            'w' => write!(out, "{}", self.weekday),
            'W' => write!(
                out,
                "{:02}",
                (self.yday - 1 + 7 - (self.weekday + 6) % 7) / 7
            ),
            'y' => write!(out, "{:02}", self.year.rem_euclid(100)),
            'Y' => write!(out, "{}", self.year),
            'z' => {
                let o = self.offset;
                let sign = if o < 0 { '-' } else { '+' };
                write!(out, "{sign}{:02}{:02}", o.abs() / 3600, o.abs() / 60 % 60)
            }
            'Z' => write!(out, "{}", self.zone),
            _ => write!(out, "%"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{By, Level, RuleRef, Url};

    const AT: Now = Now {
        secs: 1_701_588_867,
        nanos: 883_456_000,
    };

    fn render(formatter: &str, datefmt: Option<&str>, record: Record<'_>) -> String {
        let t = Template::parse(Some(formatter), datefmt, true).unwrap();
        let mut out = String::new();
        t.render_at(&mut out, record, AT);
        out
    }

    /// The default formatter writes the fixed layout of before, byte for byte.
    #[test]
    fn default_formatter_is_the_fixed_layout() {
        let rule = RuleRef {
            index: 2,
            written: &"192.0.2.0/24",
            normalized: &"192.0.2.0/24",
        };
        let e = Entry {
            level: Level::Error,
            client: Some("192.0.2.9".parse().unwrap()),
            peer: None,
            verdict: Verdict::Deny,
            rule: Some(rule),
            by: By::Rule,
            enforced: true,
            policy: None,
            status: Some(403),
            note: None,
            method: "POST",
            url: Url {
                scheme: "http",
                host: Some(&"app.example:8000"),
                origin: &"/x",
            },
            user_agent: Some("test-agent/1.0"),
        };
        assert_eq!(
            render(DEFAULT_FORMATTER, None, Record::Decision(&e)),
            "2023-12-03T07:34:27.883Z -   ERROR - 192.0.2.9 denied (403) by rule #2 deny \
             192.0.2.0/24 (192.0.2.0/24) POST http://app.example:8000/x test-agent/1.0\n"
        );
        let notice = Record::Notice {
            level: "WARNING",
            message: "3 access log line(s) were dropped",
        };
        assert_eq!(
            render(DEFAULT_FORMATTER, None, notice),
            "2023-12-03T07:34:27.883Z - WARNING - 3 access log line(s) were dropped\n"
        );
        assert_eq!(
            render(
                "%(asctime)s,%(msecs)03d %(levelno)d %(message)s",
                Some("%Y-%m-%d %H:%M:%S"),
                notice
            ),
            "2023-12-03 07:34:27,883 30 3 access log line(s) were dropped\n"
        );
    }

    #[test]
    fn time_zones_and_cache_per_template() {
        let local = Template {
            zone: Some(jiff::tz::TimeZone::fixed(
                jiff::tz::Offset::from_seconds(-(3 * 3600 + 30 * 60)).unwrap(),
            )),
            ..Template::parse(Some("%(asctime)s"), None, true).unwrap()
        };
        let utc = Template::parse(Some("%(asctime)s"), None, true).unwrap();
        let notice = Record::Notice {
            level: "INFO",
            message: "",
        };
        // The same second on one thread, alternating templates: each keeps its own text.
        for _ in 0..2 {
            let (mut a, mut b) = (String::new(), String::new());
            local.render_at(&mut a, notice, AT);
            utc.render_at(&mut b, notice, AT);
            assert_eq!(a, "2023-12-03T04:04:27.883-03:30\n");
            assert_eq!(b, "2023-12-03T07:34:27.883Z\n");
        }
    }
}

/// For measuring what a line costs: `LINES=n` lines formatted by each template in
/// `TEMPLATE` (`default` or `tmpl12`), counted under callgrind at two `n` (see docs/performance.md,
/// "The line's layout costs nothing extra").
#[cfg(test)]
#[test]
#[ignore = "a measurement: LINES=n TEMPLATE=default|tmpl12 cargo test --release --lib format_lines -- --ignored"]
fn format_lines() {
    use crate::log::{By, Level, RuleRef, Url};
    let (Ok(n), Ok(which)) = (std::env::var("LINES"), std::env::var("TEMPLATE")) else {
        return;
    };
    let n: usize = n.parse().unwrap();
    let template = match which.as_str() {
        "default" => None,
        _ => Some(
            "%(asctime)s %(levelname)-7s %(client)s %(peer)s %(verdict)s %(by)s %(rule_index)s \
             %(network)s %(status)s %(method)s \"%(url)s\" \"%(user_agent)s\"",
        ),
    };
    let t = Template::parse(template, None, true).unwrap();
    let rule = RuleRef {
        index: 1,
        written: &"127.0.0.1",
        normalized: &"127.0.0.1/32",
    };
    let e = Entry {
        level: Level::Info,
        client: Some("127.0.0.1".parse().unwrap()),
        peer: None,
        verdict: Verdict::Allow,
        rule: Some(rule),
        by: By::Rule,
        enforced: true,
        policy: None,
        status: None,
        note: None,
        method: "GET",
        url: Url {
            scheme: "http",
            host: Some(&"bench"),
            origin: &"/p500/x",
        },
        user_agent: Some("bench"),
    };
    let mut bytes = 0;
    for _ in 0..n {
        let mut line = String::with_capacity(t.size_hint);
        t.render(&mut line, Record::Decision(std::hint::black_box(&e)));
        bytes += line.len();
    }
    std::hint::black_box(bytes);
}
