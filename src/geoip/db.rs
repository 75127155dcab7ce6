//! Reading one MaxMind DB file (GeoLite2, GeoIP2, DB-IP lite) with the maxminddb crate:
//! the whole file into memory (no memory map: the crate forbids `unsafe`), every network
//! walked once, and the networks of the wanted values kept. The file's bytes are dropped
//! when this returns.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use ipnet::IpNet;
use maxminddb::{Reader, WithinOptions};
use serde::Deserialize;

use super::{GeoKey, Kind};

/// The largest database file read (GeoIP2 Enterprise is about 500 MB).
const MAX_DB_BYTES: u64 = 2 << 30;

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

/// The fields a country (or city) record is matched on: where the address is, else the
/// country it is registered to.
#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    registered_country: Option<IsoCode<'a>>,
}

#[derive(Deserialize)]
struct AsnRecord {
    autonomous_system_number: Option<u32>,
}

/// The networks of each of `wanted` (all of `kind`) in the database at `path`; a wanted
/// value the database does not have gets none. An error says why the file cannot be used:
/// unreadable, not a MaxMind DB, truncated or corrupt, or of the other kind.
pub(super) fn read(
    path: &Path,
    kind: Kind,
    wanted: &BTreeSet<GeoKey>,
) -> Result<HashMap<GeoKey, Vec<IpNet>>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!("`{shown}` is not a regular file"));
    }
    if meta.len() > MAX_DB_BYTES {
        return Err(format!("`{shown}` is larger than 2 GiB"));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    let reader = Reader::from_source(bytes.as_slice())
        .map_err(|e| format!("`{shown}` is not a readable MaxMind DB file: {e}"))?;
    let db_type = reader.metadata().database_type.clone();
    let mut out: HashMap<GeoKey, Vec<IpNet>> = wanted.iter().map(|k| (*k, Vec::new())).collect();
    // Many networks share one record: each record is decoded once.
    let mut decoded: HashMap<usize, Option<GeoKey>> = HashMap::new();
    let mut with_key = 0usize;
    let corrupt = |e: maxminddb::MaxMindDbError| format!("`{shown}` is corrupt or truncated: {e}");
    let meta = reader.metadata();
    let bits = if meta.ip_version == 6 { 128 } else { 32 };
    super::tree::bounded(&bytes, meta.node_count as usize, meta.record_size, bits)
        .map_err(|e| format!("`{shown}` is corrupt: {e}"))?;
    // Every path through the search tree, aliases included: the reader's lookup follows
    // `2002::/16`, `2001::/32` (in MaxMind's files) or any other record pointing into the
    // IPv4 subtree down it, so those IPv6 networks have the values of the IPv4 ones. (The
    // tree check above bounds the paths.)
    let every = WithinOptions::default().include_aliased_networks();
    let v6 = meta.ip_version == 6;
    let networks = reader.networks(every).map_err(corrupt)?;
    for item in networks {
        let found = item.map_err(corrupt)?;
        let Some(offset) = found.offset() else {
            continue;
        };
        let key = match decoded.get(&offset) {
            Some(key) => *key,
            None => {
                let key = match kind {
                    Kind::Country => found.decode::<CountryRecord>().map(|r| {
                        r.and_then(|r| {
                            let code = r.country.and_then(|c| c.iso_code);
                            code.or(r.registered_country.and_then(|c| c.iso_code))
                        })
                        .and_then(|code| match code.as_bytes() {
                            &[a, b] => Some(GeoKey::Country([
                                a.to_ascii_uppercase(),
                                b.to_ascii_uppercase(),
                            ])),
                            _ => None,
                        })
                    }),
                    Kind::Asn => found
                        .decode::<AsnRecord>()
                        .map(|r| r.and_then(|r| r.autonomous_system_number).map(GeoKey::Asn)),
                }
                .map_err(corrupt)?;
                decoded.insert(offset, key);
                key
            }
        };
        let Some(key) = key else { continue };
        with_key += 1;
        if let Some(list) = out.get_mut(&key) {
            let net = found.network().map_err(corrupt)?;
            let net =
                IpNet::new(net.network(), net.prefix()).map_err(|e| corrupt_net(&shown, e))?;
            match net {
                // Matched as IPv4, as the compiled table matches those clients.
                IpNet::V6(n) if IPV4_MAPPED.contains(&n) => {}
                IpNet::V6(_) => {
                    list.push(net);
                    list.extend(ipv4_space_in(net));
                }
                IpNet::V4(n) => {
                    list.push(net);
                    if v6 {
                        list.extend(ipv4_compatible(n).map(IpNet::V6));
                    }
                }
            }
        }
    }
    if with_key == 0 {
        let what = match kind {
            Kind::Country => "country codes: not a country database",
            Kind::Asn => "AS numbers: not an ASN database",
        };
        return Err(format!("`{shown}` (type `{db_type}`) has no {what}"));
    }
    Ok(out)
}

/// `::ffff:0:0/96`: IPv4-mapped addresses, which every rule matches as IPv4.
const IPV4_MAPPED: ipnet::Ipv6Net =
    match ipnet::Ipv6Net::new(std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96) {
        Ok(net) => net,
        Err(_) => panic!("96 is a prefix length"),
    };

/// `net` in an IPv6 database's IPv4 subtree as the IPv6 clients that reach it there:
/// `::a.b.c.d` (IPv4-compatible), which the reader looks up where it looks up `a.b.c.d`,
/// and which the compiled table, matching IPv6 clients against IPv6 networks, must be told.
fn ipv4_compatible(net: ipnet::Ipv4Net) -> Option<ipnet::Ipv6Net> {
    let address = std::net::Ipv6Addr::from(u128::from(u32::from(net.network())));
    ipnet::Ipv6Net::new(address, 96 + net.prefix_len()).ok()
}

/// IPv4 addresses are looked up in an IPv6 database as `::a.b.c.d` (maxminddb and
/// MaxMind's own readers): an IPv6 network that holds all of `::/96` (`::/0` in a file
/// without an IPv4 subtree) gives its value to every IPv4 address, which the compiled
/// table, matching IPv4 clients against IPv4 networks only, must then be told.
fn ipv4_space_in(net: IpNet) -> Option<IpNet> {
    match net {
        IpNet::V6(n) if n.prefix_len() <= 96 && n.contains(&std::net::Ipv6Addr::UNSPECIFIED) => {
            Some(IpNet::V4(ipnet::Ipv4Net::default()))
        }
        _ => None,
    }
}

fn corrupt_net(shown: &std::path::Display<'_>, e: ipnet::PrefixLenError) -> String {
    format!("`{shown}` is corrupt: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use maxminddb::path;
    use std::net::IpAddr;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/geoip/");

    /// Every network of the test databases, read by this module for every value they
    /// hold, gives that value when maxminddb looks up its first and last address; every
    /// network maxminddb walks with a value (aliases included) is among them; and every
    /// address probed, IPv4 in its IPv6 forms (IPv4-compatible `::a.b.c.d`, IPv4-mapped,
    /// 6to4 `2002::/16`, Teredo `2001::/32` with the address where MaxMind's files alias it
    /// and where RFC 4380 puts the client) and pseudo-random addresses over the whole space,
    /// matches the value maxminddb's lookup gives it, and no other.
    #[test]
    fn every_network_agrees_with_maxminddbs_own_lookup() {
        for (file, kind) in [
            ("GeoLite2-Country-Test.mmdb", Kind::Country),
            ("GeoIP2-Country-Test.mmdb", Kind::Country),
            ("GeoLite2-ASN-Test.mmdb", Kind::Asn),
        ] {
            let path = format!("{DIR}{file}");
            let reader = Reader::open_readfile(&path).unwrap();
            let lookup = |ip: IpAddr| -> Option<GeoKey> {
                let r = reader.lookup(ip).unwrap();
                match kind {
                    Kind::Country => {
                        let c: Option<String> =
                            r.decode_path(&path!["country", "iso_code"]).unwrap();
                        let c = c.or_else(|| {
                            r.decode_path(&path!["registered_country", "iso_code"])
                                .unwrap()
                        })?;
                        let b = c.as_bytes();
                        Some(GeoKey::Country([b[0], b[1]]))
                    }
                    Kind::Asn => r
                        .decode_path::<u32>(&path!["autonomous_system_number"])
                        .unwrap()
                        .map(GeoKey::Asn),
                }
            };
            // Every value in the database, from maxminddb's own walk, aliases included.
            let mut walked: Vec<(IpNet, GeoKey)> = Vec::new();
            let every = WithinOptions::default().include_aliased_networks();
            for item in reader.networks(every).unwrap() {
                let item = item.unwrap();
                let n = item.network().unwrap();
                let net = IpNet::new(n.network(), n.prefix()).unwrap();
                if let Some(key) = lookup(net.network()) {
                    walked.push((net, key));
                }
            }
            let wanted: BTreeSet<GeoKey> = walked.iter().map(|(_, k)| *k).collect();
            let ours = read(Path::new(&path), kind, &wanted).unwrap();
            let mut count = 0;
            for (key, nets) in &ours {
                for net in nets {
                    count += 1;
                    assert_eq!(lookup(net.network()), Some(*key), "{file}: {net}");
                    assert_eq!(lookup(net.broadcast()), Some(*key), "{file}: {net}");
                }
            }
            assert!(count > 100, "{file}: {count}");
            // IPv4-mapped networks are left out: those clients are matched as IPv4.
            let mapped: IpNet = "::ffff:0:0/96".parse().unwrap();
            for (net, key) in &walked {
                assert!(
                    ours[key].contains(net) || mapped.contains(net),
                    "{file}: {net} missing"
                );
            }
            // What the compiled table gives `ip`: the value whose networks hold it, IPv4-mapped
            // clients as IPv4.
            let ours_of = |ip: IpAddr| -> Option<GeoKey> {
                let ip = ip.to_canonical();
                let mut keys = ours
                    .iter()
                    .filter(|(_, nets)| nets.iter().any(|n| n.contains(&ip)))
                    .map(|(k, _)| *k);
                let key = keys.next();
                assert_eq!(keys.next(), None, "{file}: {ip} has two values");
                key
            };
            let mut probes: Vec<IpAddr> = Vec::new();
            let v4s = walked.iter().filter_map(|(net, _)| match net {
                IpNet::V4(n) => Some([n.network(), n.broadcast()]),
                IpNet::V6(_) => None,
            });
            for v4 in v4s.flatten() {
                let a = u128::from(u32::from(v4));
                probes.extend(
                    [
                        a,
                        0xffff_0000_0000 | a,
                        0x2002 << 112 | a << 80 | 0x1234_5678,
                        0x2001_0000 << 96 | a << 64 | 1,
                        0x2001_0000_0000_0000_8000_fedc << 32 | (a ^ 0xffff_ffff),
                    ]
                    .map(|n| IpAddr::V6(n.into())),
                );
                probes.push(IpAddr::V4(v4));
            }
            // Pseudo-random addresses, in the aliased ranges and anywhere.
            let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
            for i in 0..40_000u32 {
                x = x
                    .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                    .wrapping_add(0x5851_f42d_4c95_7f2d_1405_7b7e_f767_814f);
                let r = x ^ (x >> 67);
                let n = match i % 5 {
                    0 => r,
                    1 => 0x2002 << 112 | r >> 16,
                    2 => 0x2001_0000 << 96 | r >> 32,
                    3 => r >> 96,
                    _ => 0xffff_0000_0000 | r >> 96,
                };
                probes.push(IpAddr::V6(n.into()));
            }
            let mut seen = 0;
            for ip in probes {
                let want = lookup(ip);
                seen += usize::from(want.is_some());
                assert_eq!(ours_of(ip), want, "{file}: {ip}");
            }
            assert!(seen > 100, "{file}: {seen} probes with a value");
        }
    }

    #[test]
    fn wrong_kind_truncated_and_corrupt_files_are_errors() {
        let wanted: BTreeSet<GeoKey> = [GeoKey::Country(*b"GB")].into();
        let e = read(
            Path::new(&format!("{DIR}GeoLite2-ASN-Test.mmdb")),
            Kind::Country,
            &wanted,
        )
        .unwrap_err();
        assert!(e.contains("not a country database"), "{e}");
        let asn: BTreeSet<GeoKey> = [GeoKey::Asn(15169)].into();
        let e = read(
            Path::new(&format!("{DIR}GeoLite2-Country-Test.mmdb")),
            Kind::Asn,
            &asn,
        )
        .unwrap_err();
        assert!(e.contains("not an ASN database"), "{e}");
        let good = std::fs::read(format!("{DIR}GeoLite2-Country-Test.mmdb")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.mmdb");
        for cut in [0, 10, good.len() / 2, good.len() - 20] {
            std::fs::write(&bad, &good[..cut]).unwrap();
            assert!(read(&bad, Kind::Country, &wanted).is_err(), "cut at {cut}");
        }
        // Bytes flipped through the search tree and data: an error or the right answer,
        // never a panic.
        for at in (0..good.len() - 200).step_by(97) {
            let mut b = good.clone();
            b[at] ^= 0xff;
            std::fs::write(&bad, &b).unwrap();
            let _ = read(&bad, Kind::Country, &wanted);
        }
    }
}
