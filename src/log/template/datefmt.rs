//! `access_log.datefmt`: Python's `time.strftime` directives, parsed once and laid out for
//! the civil time of a line.

use super::*;

pub(super) enum DatePiece {
    Text(String),
    Directive(char),
}

/// The `time.strftime` directives `datefmt` may use (glibc's, C locale), less `%n`.
const DIRECTIVES: &str = "aAbBcCdDeFgGhHIjklmMpPrRsStTuUVwWxXyYzZ%";

pub(super) fn parse_datefmt(s: &str) -> Result<Vec<DatePiece>, (&'static str, String)> {
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
pub(super) struct Civil<'a> {
    pub(super) year: i64,
    pub(super) month: usize,
    pub(super) day: i64,
    pub(super) hour: i64,
    pub(super) minute: i64,
    pub(super) second: i64,
    /// 0 = Sunday.
    pub(super) weekday: i64,
    /// 1 = January 1.
    pub(super) yday: i64,
    pub(super) iso_year: i64,
    pub(super) iso_week: i64,
    pub(super) epoch: i64,
    pub(super) offset: i32,
    pub(super) zone: &'a str,
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
    pub(super) fn new(
        dt: jiff::civil::DateTime,
        epoch: i64,
        offset: i32,
        zone: &'a str,
    ) -> Civil<'a> {
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

    pub(super) fn strftime(&self, out: &mut String, pieces: &[DatePiece]) {
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
