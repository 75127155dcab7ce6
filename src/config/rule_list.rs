//! Rule lists and address lists, read loosely first so that every error names the
//! element's index and says what a rule looks like.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{OnError, SetConfig};
use crate::rules::{Rule, Target, Verdict};

/// One element of a list as read, before it is checked: kept loose so that every
/// error can name the element's index.
pub(super) enum Loose {
    Str(String),
    Table(Vec<(String, Loose)>),
    List(Vec<Loose>),
    Other(String),
}

impl Loose {
    pub(super) fn describe(&self) -> String {
        match self {
            Loose::Str(s) => format!("string \"{s}\""),
            Loose::Table(_) => "a table".into(),
            Loose::List(_) => "a list".into(),
            Loose::Other(kind) => kind.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose, E> {
                Ok(Loose::Str(v.into()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Loose, E> {
                Ok(Loose::Str(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Loose, E> {
                Ok(Loose::Other(format!("boolean {v}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Loose, E> {
                Ok(Loose::Other(format!("integer {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Loose, E> {
                Ok(Loose::Other(format!("integer {v}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Loose, E> {
                Ok(Loose::Other(format!("number {v}")))
            }
            fn visit_char<E: de::Error>(self, v: char) -> Result<Loose, E> {
                Ok(Loose::Str(v.into()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Loose, E> {
                Ok(Loose::Other("nothing".into()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Loose, E> {
                Ok(Loose::Other("nothing".into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Loose>()? {
                    items.push(item);
                }
                Ok(Loose::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Loose>()? {
                    entries.push((k, v));
                }
                Ok(Loose::Table(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// A rule table must be exactly `{ allow = "..." }` or `{ deny = "..." }`.
fn rule_from_loose(index: usize, raw: Loose) -> Result<Rule, String> {
    let at = format!("[{index}]");
    let shape = "a rule is one table with one key, `{ allow = \"...\" }` or `{ deny = \"...\" }`";
    let entries = match raw {
        Loose::Table(entries) => entries,
        other => return Err(format!("{at}: found {}; {shape}", other.describe())),
    };
    if let Some((key, _)) = entries.iter().find(|(k, _)| k != "allow" && k != "deny") {
        return Err(format!("{at}: unknown key `{key}`; {shape}"));
    }
    match entries.len() {
        0 => Err(format!("{at}: empty table; {shape}")),
        1 => {
            let (key, value) = entries.into_iter().next().expect("one entry");
            let verdict: Verdict = key.parse().expect("key checked above");
            match value {
                Loose::Str(s) => {
                    Rule::new(verdict, &s).map_err(|e| format!("{at}: {key} = \"{s}\": {e}"))
                }
                other => Err(format!(
                    "{at}: {key} must be a string, found {}",
                    other.describe()
                )),
            }
        }
        _ => Err(format!(
            "{at}: has both `allow` and `deny`; write one rule per table \
             (TOML tables do not keep key order, so which comes first cannot be known)"
        )),
    }
}

pub(super) fn de_rules<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Rule>, D::Error> {
    let list = Vec::<Loose>::deserialize(d)?;
    list.into_iter()
        .enumerate()
        .map(|(i, raw)| rule_from_loose(i, raw).map_err(de::Error::custom))
        .collect()
}

pub(super) fn de_targets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Target>, D::Error> {
    let list = Vec::<Loose>::deserialize(d)?;
    list.into_iter()
        .enumerate()
        .map(|(i, raw)| target_from_loose(i, raw).map_err(de::Error::custom))
        .collect()
}

/// One address, network, host name, `all` or `@set`; the error starts with `[index]: `.
fn target_from_loose(i: usize, raw: Loose) -> Result<Target, String> {
    match raw {
        Loose::Str(s) => Target::parse(&s).map_err(|e| format!("[{i}]: {e}")),
        other => Err(format!(
            "[{i}]: found {}; expected an address, network, host name or @set string",
            other.describe()
        )),
    }
}

/// `[allow.sets]`: each set is a list of targets, or a table naming where its entries come
/// from (`{ file = "..." }`); errors name the set (and the index).
pub(super) fn de_set_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, SetConfig>, D::Error> {
    let map = std::collections::BTreeMap::<String, Loose>::deserialize(d)?;
    map.into_iter()
        .map(|(name, raw)| {
            let set = match raw {
                Loose::List(list) => list
                    .into_iter()
                    .enumerate()
                    .map(|(i, raw)| target_from_loose(i, raw).map_err(|m| format!("{name}{m}")))
                    .collect::<Result<Vec<Target>, String>>()
                    .map(SetConfig::Inline),
                Loose::Table(entries) => set_source(&name, entries),
                other => Err(format!(
                    "{name}[0]: found {}; a set is a list of entries or `{{ file = \"path\" }}`",
                    other.describe()
                )),
            }
            .map_err(de::Error::custom)?;
            Ok((name, set))
        })
        .collect()
}

/// `{ file = "path" }` or `{ url = "...", refresh_secs = N, on_error = "fail" | "warn",
/// timeout_secs = N, allow_shrink = true | false }`.
fn set_source(name: &str, entries: Vec<(String, Loose)>) -> Result<SetConfig, String> {
    let shape = "a set is a list of entries, `{ file = \"path\" }` or `{ url = \"https://...\" }`";
    let at = |key: &str| format!("{name}.{key}");
    let string = |key: &str, v: &Loose| match v {
        Loose::Str(s) if !s.is_empty() => Ok(s.clone()),
        other => Err(format!(
            "{}: must be a non-empty string, found {}",
            at(key),
            other.describe()
        )),
    };
    let number = |key: &str, v: &Loose, max: u64| {
        let n = match v {
            Loose::Other(d) => d
                .strip_prefix("integer ")
                .and_then(|n| n.parse::<u64>().ok()),
            _ => None,
        };
        match n {
            Some(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "{}: must be a whole number of seconds from 1 to {max}, found {}",
                at(key),
                v.describe()
            )),
        }
    };
    if let [(key, v)] = entries.as_slice() {
        if key == "file" {
            return Ok(SetConfig::File {
                file: std::path::PathBuf::from(string("file", v)?),
            });
        }
    }
    let mut url = None;
    let (mut refresh_secs, mut timeout_secs, mut on_error) = (3600, 10, OnError::Fail);
    let mut allow_shrink = false;
    for (key, v) in &entries {
        match key.as_str() {
            "url" => url = Some(string("url", v)?),
            "refresh_secs" => refresh_secs = number("refresh_secs", v, 604_800)?,
            "timeout_secs" => timeout_secs = number("timeout_secs", v, 300)?,
            "allow_shrink" => {
                allow_shrink = match v {
                    Loose::Other(b) if b == "boolean true" => true,
                    Loose::Other(b) if b == "boolean false" => false,
                    other => {
                        return Err(format!(
                            "{}: must be true or false, found {}",
                            at("allow_shrink"),
                            other.describe()
                        ))
                    }
                }
            }
            "on_error" => {
                on_error = match string("on_error", v)?.as_str() {
                    "fail" => OnError::Fail,
                    "warn" => OnError::Warn,
                    other => {
                        return Err(format!(
                            "{}: `{other}` is neither \"fail\" nor \"warn\"",
                            at("on_error")
                        ))
                    }
                }
            }
            other => return Err(format!("{name}[0]: unknown key `{other}`; {shape}")),
        }
    }
    match url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Ok(SetConfig::Url {
                url,
                refresh_secs,
                on_error,
                timeout_secs,
                allow_shrink,
            })
        }
        Some(url) => Err(format!(
            "{}: `{url}` is not an http:// or https:// URL",
            at("url")
        )),
        None => Err(format!("{name}[0]: {shape}")),
    }
}
