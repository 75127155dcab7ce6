//! Records as Redis holds them, and the checks that keep a record someone else wrote from
//! doing harm: a field or value that does not parse is skipped (and logged with its key),
//! never a panic and never "no bans".

use ipnet::IpNet;
use serde_json::{json, Value};

use super::now_ms;
use crate::decide::bans::version::Version;
use crate::decide::bans::{self, cap_reason, parse_target, Lift, State};

/// How far ahead of this instance's clock a record's time may be (clock skew): a record
/// made later than that is garbage, and must not win over every real change.
const MAX_AHEAD_MS: u64 = 24 * 3600 * 1000;

/// What a hash holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Bans,
    Sets,
    Modes,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Bans, Kind::Sets, Kind::Modes];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Bans => "bans",
            Kind::Sets => "sets",
            Kind::Modes => "modes",
        }
    }

    fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A record on its way to Redis: a change made on this instance, or one it holds that
/// Redis lacks (written back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub kind: Kind,
    pub field: String,
    /// The record's JSON text.
    pub value: String,
    /// Its version: Redis keeps the newer record.
    pub version: Version,
    /// When the record may leave Redis (Unix ms); `None`: while it is in force.
    pub drop_at: Option<u64>,
}

impl Change {
    fn new(
        kind: Kind,
        field: String,
        mut value: Value,
        version: Version,
        origin: &str,
        drop_at: Option<u64>,
    ) -> Change {
        value["m"] = json!(version.ms);
        value["i"] = json!(version.instance);
        value["s"] = json!(version.seq);
        value["o"] = json!(origin);
        Change {
            kind,
            field,
            value: value.to_string(),
            version,
            drop_at,
        }
    }

    /// A ban's record, or a lift's.
    pub fn of(record: &bans::Record, origin: &str) -> Change {
        let (value, drop_at) = match &record.state {
            State::Ban { expires, reason } => {
                let e = (*expires != u64::MAX).then_some(*expires);
                (json!({ "e": e, "r": reason }), e)
            }
            State::Lifted { keep } => {
                let k = (*keep != u64::MAX).then_some(*keep);
                (json!({ "l": true, "k": k }), k)
            }
        };
        Change::new(
            Kind::Bans,
            record.target.trunc().to_string(),
            value,
            record.version,
            origin,
            drop_at,
        )
    }

    /// A ban (`expires` in Unix ms, `u64::MAX` until lifted).
    pub fn ban(
        target: IpNet,
        expires: u64,
        reason: Option<&str>,
        version: Version,
        origin: &str,
    ) -> Change {
        Change::of(
            &bans::Record {
                target,
                version,
                state: State::Ban {
                    expires,
                    reason: reason.map(str::to_string),
                },
            },
            origin,
        )
    }

    /// A lifted ban.
    pub fn unban(target: IpNet, lift: Lift, origin: &str) -> Change {
        Change::of(
            &bans::Record {
                target,
                version: lift.version,
                state: State::Lifted { keep: lift.keep },
            },
            origin,
        )
    }

    /// An inline set's new entries.
    pub fn set(name: &str, entries: &[String], version: Version, origin: &str) -> Change {
        Change::new(
            Kind::Sets,
            name.to_string(),
            json!({ "entries": entries }),
            version,
            origin,
            None,
        )
    }

    /// A policy's new mode (`""`: the app-wide rules).
    pub fn mode(policy: &str, enforce: bool, version: Version, origin: &str) -> Change {
        let mode = if enforce { "enforce" } else { "report" };
        Change::new(
            Kind::Modes,
            policy.to_string(),
            json!({ "mode": mode }),
            version,
            origin,
            None,
        )
    }

    /// This change made again at `version` (by `origin`).
    pub fn after(&self, version: Version, origin: &str) -> Change {
        let mut value: Value = serde_json::from_str(&self.value).unwrap_or_default();
        for key in ["m", "i", "s", "o"] {
            if let Some(o) = value.as_object_mut() {
                o.remove(key);
            }
        }
        Change::new(
            self.kind,
            self.field.clone(),
            value,
            version,
            origin,
            self.drop_at,
        )
    }

    /// The message published for this change.
    pub fn message(&self) -> String {
        json!({ "k": self.kind.name(), "f": self.field, "v": self.value }).to_string()
    }

    /// The change log's entry for this change: which record changed, not the record (a
    /// set's entries are stored once, in its hash field, however often it changes; an entry
    /// is a few dozen bytes, so the log's size is bounded by its count).
    pub fn reference(&self) -> String {
        json!({ "k": self.kind.name(), "f": self.field }).to_string()
    }
}

/// Reads a change log entry written by [`Change::reference`]: the kind and field.
pub(crate) fn decode_reference(text: &str) -> Result<(Kind, String), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let (kind, field) = named(&v)?;
    Ok((kind, field.to_string()))
}

/// The kind (`k`) and field (`f`) a message or a log entry names.
fn named(v: &Value) -> Result<(Kind, &str), String> {
    let kind = v["k"]
        .as_str()
        .and_then(Kind::from_name)
        .ok_or("no known `k`")?;
    let field = v["f"].as_str().ok_or("no `f`")?;
    Ok((kind, field))
}

/// A record read from Redis (a hash field or a message), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// A ban or a lift.
    Ban(bans::Record),
    Set {
        name: String,
        entries: Vec<String>,
        version: Version,
    },
    Mode {
        policy: String,
        enforce: bool,
        version: Version,
    },
}

impl Record {
    /// The record's version.
    pub fn version(&self) -> Version {
        match self {
            Record::Ban(r) => r.version,
            Record::Set { version, .. } | Record::Mode { version, .. } => *version,
        }
    }
}

/// A ban's record as JSON (read straight into its fields: a full resync reads a million).
#[derive(serde::Deserialize)]
struct BanJson {
    /// Expiry, Unix ms; null until lifted.
    e: Option<u64>,
    /// Reason.
    r: Option<String>,
    /// When it was made.
    m: u64,
    /// The instance that made it (records written before versions: 0).
    #[serde(default)]
    i: u32,
    /// That instance's sequence number.
    #[serde(default)]
    s: u32,
    /// Lifted.
    #[serde(default)]
    l: bool,
    /// A lift's time to go (null: kept for ever; absent: written before versions, 7 days).
    #[serde(default, deserialize_with = "present")]
    k: Option<Option<u64>>,
}

/// A field that is present, `null` included (serde reads a `null` as absent otherwise).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// Whether `net` is written exactly as `text`: compared as it is formatted, without
/// allocating (a full read checks a million of them).
fn spelled(net: &IpNet, text: &str) -> bool {
    struct Rest<'a>(&'a [u8]);
    impl std::fmt::Write for Rest<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let rest = self.0.strip_prefix(s.as_bytes()).ok_or(std::fmt::Error)?;
            self.0 = rest;
            Ok(())
        }
    }
    let mut rest = Rest(text.as_bytes());
    std::fmt::write(&mut rest, format_args!("{net}")).is_ok() && rest.0.is_empty()
}

/// The version of a set's or mode's record.
fn version_of(v: &Value) -> Result<Version, String> {
    let ms = v["m"].as_u64().ok_or("no `m` (when it was made)")?;
    let small = |key: &str| match &v[key] {
        Value::Null => Ok(0),
        n => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(format!("`{key}` is not a small number")),
    };
    Ok(Version {
        ms,
        instance: small("i")?,
        seq: small("s")?,
    })
}

/// Reads one hash field's value.
pub(crate) fn decode(kind: Kind, field: &str, value: &str) -> Result<Record, String> {
    if kind == Kind::Bans {
        let target = parse_target(field)?;
        // One spelling per target: a lift written under the canonical field must meet the
        // ban it lifts (`127.0.0.5` and `127.0.0.5/32` would otherwise be two records).
        if !spelled(&target, field) {
            return Err(format!("not the canonical spelling `{target}`"));
        }
        let v: BanJson =
            serde_json::from_str(value).map_err(|e| format!("not a ban record: {e}"))?;
        if v.m > now_ms().saturating_add(MAX_AHEAD_MS) {
            return Err("made more than a day in the future".into());
        }
        let version = Version {
            ms: v.m,
            instance: v.i,
            seq: v.s,
        };
        let state = if v.l {
            let keep = match v.k {
                Some(keep) => keep.unwrap_or(u64::MAX),
                None => Lift::of(version, None).keep,
            };
            State::Lifted { keep }
        } else {
            State::Ban {
                expires: v.e.unwrap_or(u64::MAX),
                // Someone else's writer may not cut reasons: cut here, never skipped.
                reason: v.r.map(|r| cap_reason(&r).into_owned()),
            }
        };
        return Ok(Record::Ban(bans::Record {
            target,
            version,
            state,
        }));
    }
    let v: Value = serde_json::from_str(value).map_err(|e| format!("not JSON: {e}"))?;
    let version = version_of(&v)?;
    if version.ms > now_ms().saturating_add(MAX_AHEAD_MS) {
        return Err("made more than a day in the future".into());
    }
    match kind {
        Kind::Bans => unreachable!("read above"),
        Kind::Sets => {
            let entries = v["entries"]
                .as_array()
                .ok_or("no `entries` list")?
                .iter()
                .map(|e| e.as_str().map(str::to_string).ok_or("an entry is not text"))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Record::Set {
                name: field.to_string(),
                entries,
                version,
            })
        }
        Kind::Modes => {
            let enforce = match v["mode"].as_str() {
                Some("enforce") => true,
                Some("report") => false,
                _ => return Err("`mode` is not `enforce` or `report`".into()),
            };
            Ok(Record::Mode {
                policy: field.to_string(),
                enforce,
                version,
            })
        }
    }
}

/// Reads a published message: the kind and the record.
pub(crate) fn decode_message(text: &str) -> Result<(Kind, Record), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let (kind, field) = named(&v)?;
    let value = v["v"].as_str().ok_or("no `v`")?;
    Ok((kind, decode(kind, field, value)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_back_as_records() {
        let net: IpNet = "192.0.2.0/24".parse().unwrap();
        let version = Version {
            ms: 5,
            instance: 7,
            seq: 9,
        };
        let c = Change::ban(net, 5000, Some("x"), version, "a");
        let (kind, r) = decode_message(&c.message()).unwrap();
        assert_eq!(kind, Kind::Bans);
        assert_eq!(
            r,
            Record::Ban(bans::Record {
                target: net,
                version,
                state: State::Ban {
                    expires: 5000,
                    reason: Some("x".into())
                }
            })
        );
        assert_eq!(c.drop_at, Some(5000));
        let c = Change::ban(net, u64::MAX, None, version, "a");
        assert_eq!(c.drop_at, None);
        let lift = Lift::of(version, Some(u64::MAX));
        let c = Change::unban(net, lift, "a");
        assert_eq!(c.drop_at, None, "the lift of a ban until lifted stays");
        assert!(matches!(
            decode(Kind::Bans, &c.field, &c.value),
            Ok(Record::Ban(bans::Record {
                state: State::Lifted { keep: u64::MAX },
                ..
            }))
        ));
        let lift = Lift::of(version, None);
        assert_eq!(Change::unban(net, lift, "a").drop_at, Some(lift.keep));
        let c = Change::mode("", false, version, "a");
        assert!(matches!(
            decode(Kind::Modes, "", &c.value),
            Ok(Record::Mode { enforce: false, version: v, .. }) if v == version
        ));
        // A record from before versions: made at `m`, by instance 0.
        let old = decode(Kind::Bans, "192.0.2.1/32", r#"{"l":true,"m":3}"#).unwrap();
        assert!(
            matches!(old, Record::Ban(r) if r.version == Version { ms: 3, instance: 0, seq: 0 })
        );
        // A reason too long is cut, never a reason to skip the ban.
        let long = format!(r#"{{"r":"{}","m":3}}"#, "é".repeat(3000));
        match decode(Kind::Bans, "192.0.2.1/32", &long) {
            Ok(Record::Ban(bans::Record {
                state: State::Ban {
                    reason: Some(r), ..
                },
                ..
            })) => {
                assert!(r.len() <= 1024 && r.ends_with('…'), "{}", r.len());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_the_canonical_spelling_is_a_ban_field() {
        let ok = r#"{"m":1}"#;
        for field in ["192.0.2.1/32", "192.0.2.0/24", "2001:db8::/64", "::1/128"] {
            assert!(decode(Kind::Bans, field, ok).is_ok(), "{field}");
        }
        for field in [
            "192.0.2.1",
            "192.0.2.1/3",
            "192.0.2.1/320",
            "192.0.2.1/32 ",
            "2001:DB8::/64",
            "2001:db8:0::/64",
            "2001:db8::/6",
        ] {
            assert!(decode(Kind::Bans, field, ok).is_err(), "{field}");
        }
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for (kind, field, value) in [
            (Kind::Bans, "not-a-net", r#"{"m":1}"#),
            (Kind::Bans, "192.0.2.1", "garbage"),
            (Kind::Bans, "192.0.2.1", r#"{"e":"soon","m":1}"#),
            (Kind::Bans, "192.0.2.1", r#"{"e":1}"#),
            (Kind::Bans, "all", r#"{"m":1}"#),
            (Kind::Bans, "192.0.2.1", r#"{"m":-1}"#),
            (Kind::Bans, "192.0.2.1", "[]"),
            (Kind::Sets, "s", r#"{"entries":[1],"m":1}"#),
            (Kind::Modes, "", r#"{"mode":"off","m":1}"#),
        ] {
            assert!(decode(kind, field, value).is_err(), "{field} {value}");
        }
        assert!(decode_message("{}").is_err());
        assert!(decode_message(r#"{"k":"bans","f":"192.0.2.1","v":7}"#).is_err());
    }
}
