//! Records as Redis holds them, and the checks that keep a record someone else wrote from
//! doing harm: a field or value that does not parse is skipped (and logged with its key),
//! never a panic and never "no bans".

use ipnet::IpNet;
use serde_json::{json, Value};

use super::now_ms;
use crate::decide::bans::parse_target;

/// How long a lifted-ban record stays (so that a ban lifted during a partition stays
/// lifted when an instance that missed it comes back): 7 days.
pub(crate) const LIFTED_KEEP_MS: u64 = 7 * 24 * 3600 * 1000;

/// How far ahead of this instance's clock a record's time may be (clock skew): a record
/// made later than that is garbage, and must not win over every real change.
const MAX_AHEAD_MS: u64 = 24 * 3600 * 1000;

/// The longest reason kept from Redis.
const MAX_REASON: usize = 1024;

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

/// A change made on this instance, on its way to Redis.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub kind: Kind,
    pub field: String,
    /// The record's JSON text.
    pub value: String,
    /// When it was made (Unix ms): the newer record wins.
    pub made: u64,
    /// When the record may leave Redis (Unix ms); `None`: while it is in force.
    pub drop_at: Option<u64>,
}

impl Change {
    fn new(kind: Kind, field: String, mut value: Value, origin: &str) -> Change {
        let made = now_ms();
        value["m"] = json!(made);
        value["o"] = json!(origin);
        let drop_at = match kind {
            Kind::Bans if value["l"] == json!(true) => Some(made.saturating_add(LIFTED_KEEP_MS)),
            Kind::Bans => value["e"].as_u64(),
            _ => None,
        };
        Change {
            kind,
            field,
            value: value.to_string(),
            made,
            drop_at,
        }
    }

    /// A ban (`expires` in Unix ms, `u64::MAX` until lifted).
    pub fn ban(target: IpNet, expires: u64, reason: Option<&str>, origin: &str) -> Change {
        let e = (expires != u64::MAX).then_some(expires);
        Change::new(
            Kind::Bans,
            target.trunc().to_string(),
            json!({ "e": e, "r": reason }),
            origin,
        )
    }

    /// A lifted ban.
    pub fn unban(target: IpNet, origin: &str) -> Change {
        Change::new(
            Kind::Bans,
            target.trunc().to_string(),
            json!({ "l": true }),
            origin,
        )
    }

    /// An inline set's new entries.
    pub fn set(name: &str, entries: &[String], origin: &str) -> Change {
        Change::new(
            Kind::Sets,
            name.to_string(),
            json!({ "entries": entries }),
            origin,
        )
    }

    /// A policy's new mode (`""`: the app-wide rules).
    pub fn mode(policy: &str, enforce: bool, origin: &str) -> Change {
        let mode = if enforce { "enforce" } else { "report" };
        Change::new(
            Kind::Modes,
            policy.to_string(),
            json!({ "mode": mode }),
            origin,
        )
    }

    /// The message published for this change.
    pub fn message(&self) -> String {
        json!({ "k": self.kind.name(), "f": self.field, "v": self.value }).to_string()
    }
}

/// A record read from Redis (a hash field or a message), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    Ban {
        target: IpNet,
        expires: u64,
        reason: Option<String>,
        made: u64,
    },
    Lifted {
        target: IpNet,
        made: u64,
    },
    Set {
        name: String,
        entries: Vec<String>,
        made: u64,
    },
    Mode {
        policy: String,
        enforce: bool,
        made: u64,
    },
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
    /// Lifted.
    #[serde(default)]
    l: bool,
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
        if v.l {
            return Ok(Record::Lifted { target, made: v.m });
        }
        if v.r.as_ref().is_some_and(|r| r.len() > MAX_REASON) {
            return Err("`r` is longer than 1024 bytes".into());
        }
        return Ok(Record::Ban {
            target,
            expires: v.e.unwrap_or(u64::MAX),
            reason: v.r,
            made: v.m,
        });
    }
    let v: Value = serde_json::from_str(value).map_err(|e| format!("not JSON: {e}"))?;
    let made = v["m"].as_u64().ok_or("no `m` (when it was made)")?;
    if made > now_ms().saturating_add(MAX_AHEAD_MS) {
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
                made,
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
                made,
            })
        }
    }
}

/// Reads a published message: the kind and the record.
pub(crate) fn decode_message(text: &str) -> Result<(Kind, Record), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let kind = v["k"]
        .as_str()
        .and_then(Kind::from_name)
        .ok_or("no known `k`")?;
    let field = v["f"].as_str().ok_or("no `f`")?;
    let value = v["v"].as_str().ok_or("no `v`")?;
    Ok((kind, decode(kind, field, value)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_back_as_records() {
        let net: IpNet = "192.0.2.0/24".parse().unwrap();
        let c = Change::ban(net, 5000, Some("x"), "a");
        let (kind, r) = decode_message(&c.message()).unwrap();
        assert_eq!(kind, Kind::Bans);
        assert_eq!(
            r,
            Record::Ban {
                target: net,
                expires: 5000,
                reason: Some("x".into()),
                made: c.made
            }
        );
        assert_eq!(c.drop_at, Some(5000));
        let c = Change::ban(net, u64::MAX, None, "a");
        assert_eq!(c.drop_at, None);
        let c = Change::unban(net, "a");
        assert!(matches!(
            decode(Kind::Bans, &c.field, &c.value),
            Ok(Record::Lifted { .. })
        ));
        let c = Change::mode("", false, "a");
        assert!(matches!(
            decode(Kind::Modes, "", &c.value),
            Ok(Record::Mode { enforce: false, .. })
        ));
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
