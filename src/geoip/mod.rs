//! Country and ASN rules: `country:XX` and `asn:N` values, turned into networks when the
//! databases are read (at ignite, and again whenever a database file is replaced), so a
//! decision stays one lookup in the compiled first-match table and no database is kept
//! in memory: only the networks of the values the configuration uses.

mod db;
mod tree;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::GeoipConfig;
use crate::rules::Target;

/// A `country:` or `asn:` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum GeoKey {
    Country([u8; 2]),
    Asn(u32),
}

impl GeoKey {
    /// The key of a `country:`/`asn:` target; `None` for any other.
    pub fn of(target: &Target) -> Option<GeoKey> {
        match target {
            Target::Country(code) => match code.as_bytes() {
                &[a, b] => Some(GeoKey::Country([a, b])),
                _ => None,
            },
            Target::Asn(n) => Some(GeoKey::Asn(*n)),
            _ => None,
        }
    }

    /// Which database gives this key its networks.
    pub fn kind(self) -> Kind {
        match self {
            GeoKey::Country(_) => Kind::Country,
            GeoKey::Asn(_) => Kind::Asn,
        }
    }
}

/// The two databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Country,
    Asn,
}

impl Kind {
    /// The configuration key naming its file.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Country => "allow.geoip.country_db",
            Kind::Asn => "allow.geoip.asn_db",
        }
    }

    /// The file, if configured.
    pub fn path(self, config: &GeoipConfig) -> Option<&PathBuf> {
        match self {
            Kind::Country => config.country_db.as_ref(),
            Kind::Asn => config.asn_db.as_ref(),
        }
    }
}

/// The networks of every `country:`/`asn:` value in use, as the databases gave them.
#[derive(Debug, Default)]
pub(crate) struct Geo {
    pub config: GeoipConfig,
    /// Each value's networks, sorted (shared with the generation that shows them in logs).
    nets: HashMap<GeoKey, Arc<[IpNet]>>,
}

/// Every `country:`/`asn:` value among `targets`.
pub(crate) fn keys<'a>(targets: impl IntoIterator<Item = &'a Target>) -> BTreeSet<GeoKey> {
    targets.into_iter().filter_map(GeoKey::of).collect()
}

impl Geo {
    /// No networks yet: the files are read by [`Geo::load`].
    pub fn new(config: GeoipConfig) -> Geo {
        Geo {
            config,
            nets: HashMap::new(),
        }
    }

    /// The networks the database gives `target` (none for other targets, and for an
    /// address the database does not know).
    pub fn networks(&self, target: &Target) -> &[IpNet] {
        GeoKey::of(target)
            .and_then(|k| self.nets.get(&k))
            .map_or(&[], |n| n)
    }

    /// [`Geo::networks`], shared: sorted, without repeats.
    pub fn shared(&self, target: &Target) -> Option<Arc<[IpNet]>> {
        GeoKey::of(target).and_then(|k| self.nets.get(&k)).cloned()
    }

    /// Whether every one of `wanted` has been read.
    pub fn covers(&self, wanted: &BTreeSet<GeoKey>) -> bool {
        wanted.iter().all(|k| self.nets.contains_key(k))
    }

    /// Reads both databases (those `wanted` needs) for `wanted`. The error names the key
    /// of the file and says what is wrong with it.
    pub fn load(config: &GeoipConfig, wanted: &BTreeSet<GeoKey>) -> Result<Geo, (String, String)> {
        let mut geo = Geo::new(config.clone());
        for kind in [Kind::Country, Kind::Asn] {
            geo = geo
                .reload(kind, wanted)
                .map_err(|message| (kind.key().to_string(), message))?;
        }
        Ok(geo)
    }

    /// This state with `kind`'s networks read again from its file for the `wanted` keys
    /// of that kind (the other kind's are kept). A file that cannot be used is an error,
    /// and changes nothing.
    pub fn reload(&self, kind: Kind, wanted: &BTreeSet<GeoKey>) -> Result<Geo, String> {
        let of_kind: BTreeSet<GeoKey> = wanted
            .iter()
            .copied()
            .filter(|k| k.kind() == kind)
            .collect();
        let mut nets: HashMap<GeoKey, Arc<[IpNet]>> = self
            .nets
            .iter()
            .filter(|(k, _)| k.kind() != kind)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        if !of_kind.is_empty() {
            let Some(path) = kind.path(&self.config) else {
                return Err("is not configured".into());
            };
            nets.extend(
                db::read(path, kind, &of_kind)?
                    .into_iter()
                    .map(|(k, mut v)| {
                        v.sort_unstable();
                        v.dedup();
                        (k, Arc::from(v))
                    }),
            );
        }
        Ok(Geo {
            config: self.config.clone(),
            nets,
        })
    }

    /// Networks read for each key, for the log.
    pub fn network_count(&self) -> usize {
        self.nets.values().map(|n| n.len()).sum()
    }
}

impl Geo {
    /// The values read so far (every value in use: a change that brings a new one reads it).
    pub fn loaded(&self) -> BTreeSet<GeoKey> {
        self.nets.keys().copied().collect()
    }
}

/// `geo`, or a new state with the networks of the `country:`/`asn:` values that set `name`
/// now holds and `geo` has not read (read from the databases now, off the request path:
/// list files and URL lists change on background threads). An error names the set.
pub(crate) fn covering<V: std::borrow::Borrow<Vec<Target>>>(
    geo: &std::sync::Arc<Geo>,
    entries: &std::collections::BTreeMap<String, V>,
    name: &str,
) -> Result<std::sync::Arc<Geo>, String> {
    let new = keys(entries.get(name).map_or(&[][..], |e| e.borrow().as_slice()));
    if geo.covers(&new) {
        return Ok(geo.clone());
    }
    let mut wanted = geo.loaded();
    wanted.extend(new.iter().copied());
    let mut next = None;
    for kind in [Kind::Country, Kind::Asn] {
        if new
            .iter()
            .all(|k| k.kind() != kind || geo.nets.contains_key(k))
        {
            continue;
        }
        let from = next.as_ref().unwrap_or(&**geo);
        let read = from.reload(kind, &wanted).map_err(|message| {
            let value = new
                .iter()
                .find(|k| k.kind() == kind)
                .map(show)
                .unwrap_or_default();
            format!(
                "allow.sets.{name}: `{value}` needs {}: {message}",
                kind.key()
            )
        })?;
        next = Some(read);
    }
    Ok(next.map_or_else(|| geo.clone(), std::sync::Arc::new))
}

/// A key as written in rules.
fn show(key: &GeoKey) -> String {
    match key {
        GeoKey::Country([a, b]) => format!("country:{}{}", *a as char, *b as char),
        GeoKey::Asn(n) => format!("asn:{n}"),
    }
}

/// The networks of every `country:`/`asn:` value among `targets` (each with the key it
/// was written under), read at ignite. A value whose database is not configured, or a
/// database that cannot be used, fails ignite naming the key.
pub(crate) fn at_ignite<'a>(
    config: &GeoipConfig,
    targets: impl IntoIterator<Item = (&'a Target, String)>,
) -> Result<Geo, crate::error::Error> {
    let mut wanted = BTreeSet::new();
    for (target, key) in targets {
        let Some(geo) = GeoKey::of(target) else {
            continue;
        };
        if geo.kind().path(config).is_none() {
            return Err(crate::error::Error::Invalid {
                key,
                message: format!(
                    "`{target}` needs a database: set {} to a MaxMind DB file",
                    geo.kind().key()
                ),
            });
        }
        wanted.insert(geo);
    }
    let geo = Geo::load(config, &wanted)
        .map_err(|(key, message)| crate::error::Error::Invalid { key, message })?;
    if !wanted.is_empty() {
        log::info!(target: "rocket_allow",
            "allow.geoip: {} networks for {} country and AS values", geo.network_count(), wanted.len());
    }
    Ok(geo)
}

/// The configured database files, to watch: (name under `allow.geoip`, path).
pub(crate) fn files(config: &GeoipConfig) -> Vec<(&'static str, PathBuf)> {
    [("country_db", Kind::Country), ("asn_db", Kind::Asn)]
        .into_iter()
        .filter_map(|(name, kind)| {
            let path = kind.path(config)?;
            Some((
                name,
                std::path::absolute(path).unwrap_or_else(|_| path.clone()),
            ))
        })
        .collect()
}

/// This state with the database named `name` (`country_db` or `asn_db`) read again, for
/// the values in use; `Ok(None)` when none of its values is in use.
pub(crate) fn reread(geo: &Geo, name: &str) -> Result<Option<Geo>, String> {
    let kind = if name == "country_db" {
        Kind::Country
    } else {
        Kind::Asn
    };
    let wanted = geo.loaded();
    if wanted.iter().all(|k| k.kind() != kind) {
        return Ok(None);
    }
    geo.reload(kind, &wanted).map(Some)
}
