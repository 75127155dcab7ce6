//! `[allow.geoip]`: the MaxMind DB files `country:` and `asn:` values are read from.

use std::path::PathBuf;

use serde::Deserialize;

/// `[allow.geoip]`. Each file is read at ignite and again whenever it changes (replace it
/// by rename); a file that cannot be used then keeps the networks last read.
///
/// ```
/// let geoip = rocket_allow::GeoipConfig::default();
/// assert!(geoip.country_db.is_none() && geoip.asn_db.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipConfig {
    /// A country (or city) database in MaxMind DB format: GeoLite2-Country, GeoIP2-Country
    /// or -City, DB-IP's country lite. Needed by `country:XX` values. Default: none.
    #[serde(default)]
    pub country_db: Option<PathBuf>,
    /// An ASN database in MaxMind DB format: GeoLite2-ASN, DB-IP's ASN lite. Needed by
    /// `asn:N` values. Default: none.
    #[serde(default)]
    pub asn_db: Option<PathBuf>,
}
