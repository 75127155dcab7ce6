//! The ban table against a list of bans, and its parts.

use super::*;
use proptest::prelude::*;

/// The reference: every ban in a list, the most specific one in force wins.
fn model(bans: &[(IpNet, u64)], ip: IpAddr, now: u64) -> Option<IpNet> {
    let ip = ip.to_canonical();
    bans.iter()
        .filter(|(n, e)| n.contains(&ip) && *e > now)
        .max_by_key(|(n, _)| n.prefix_len())
        .map(|(n, _)| *n)
}

fn arb_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (0u32..8, 20u8..=32).prop_map(|(a, p)| {
            IpNet::from(
                Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | a << 6), p)
                    .unwrap()
                    .trunc(),
            )
        }),
        (0u128..8, 116u8..=128).prop_map(|(a, p)| {
            let addr = Ipv6Addr::from(0x2001_0db8u128 << 96 | a << 7);
            IpNet::from(Ipv6Net::new(addr, p).unwrap().trunc())
        }),
        (0u32..8, 0u8..=2).prop_map(|(a, p)| {
            IpNet::from(Ipv4Net::new(Ipv4Addr::from(a), p).unwrap().trunc())
        }),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Ban(IpNet, u64),
    Unban(IpNet),
    Sweep(u64),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn agrees_with_a_list_of_bans(
        ops in prop::collection::vec(prop_oneof![
            (arb_net(), prop_oneof![Just(NEVER), 1u64..20]).prop_map(|(n, e)| Op::Ban(n, e)),
            arb_net().prop_map(Op::Unban),
            (0u64..20).prop_map(Op::Sweep),
        ], 0..60),
        probes in prop::collection::vec((0u32..600, 0u128..1100, 0u64..20), 1..40),
    ) {
        let table = Table::new();
        let mut list: Vec<(IpNet, u64)> = Vec::new();
        let mut swept_at = 0;
        for op in ops {
            match op {
                Op::Ban(n, e) => {
                    let had = list.iter().any(|b| b.0 == n);
                    list.retain(|b| b.0 != n);
                    list.push((n, e));
                    prop_assert_eq!(table.insert(n, e, 7, Version::ZERO).is_some(), had);
                }
                Op::Unban(n) => {
                    let had = list.iter().position(|b| b.0 == n).map(|i| list.remove(i));
                    prop_assert_eq!(table.remove(n).map(|r| r.expires), had.map(|b| b.1));
                }
                Op::Sweep(now) => {
                    let now = now.max(swept_at);
                    swept_at = now;
                    let mut labels = 0;
                    table.sweep(now, |f| { assert_eq!(f.label, 7); labels += 1 });
                    let before = list.len();
                    list.retain(|b| b.1 > now);
                    prop_assert_eq!(labels, before - list.len());
                }
            }
            prop_assert_eq!(table.len(), list.len());
        }
        for (a4, a6, now) in probes {
            let now = now.max(swept_at);
            for ip in [
                IpAddr::from(Ipv4Addr::from(0x0a00_0000 | a4)),
                IpAddr::from(Ipv4Addr::from(a4)),
                IpAddr::from(Ipv4Addr::from(0x0a00_0000 | a4).to_ipv6_mapped()),
                IpAddr::from(Ipv6Addr::from(0x2001_0db8u128 << 96 | a6)),
            ] {
                prop_assert_eq!(table.find(ip, now).map(|f| f.target), model(&list, ip, now), "{}", ip);
            }
        }
        let mut all = Vec::new();
        table.each(|f| all.push((f.target, f.expires)));
        all.sort();
        list.sort();
        prop_assert_eq!(all, list);
    }
}

#[test]
fn reserving_room_changes_nothing_but_capacity() {
    let table = Table::new();
    let nets: Vec<IpNet> = (0..5000u32)
        .map(|i| match i % 2 {
            0 => Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32)
                .unwrap()
                .into(),
            _ => Ipv6Net::new(Ipv6Addr::from(u128::from(i) << 64), 64)
                .unwrap()
                .into(),
        })
        .collect();
    table.reserve(nets.iter().copied());
    assert_eq!(table.len(), 0);
    assert_eq!(table.find("10.0.0.0".parse().unwrap(), 0), None);
    for (i, net) in nets.iter().enumerate() {
        assert_eq!(table.insert(*net, NEVER, i as u32, Version::ZERO), None);
    }
    // Held already: reserving again (a resync of the same bans) grows nothing.
    let capacity = |t: &Table| {
        let mut c = 0;
        for level in t.v4.iter().filter_map(OnceLock::get) {
            c += level
                .shards
                .iter()
                .map(|s| s.read().unwrap().table.capacity())
                .sum::<usize>();
        }
        for level in t.v6.iter().filter_map(OnceLock::get) {
            c += level
                .shards
                .iter()
                .map(|s| s.read().unwrap().table.capacity())
                .sum::<usize>();
        }
        c
    };
    let before = capacity(&table);
    table.reserve(nets.iter().copied());
    assert_eq!(capacity(&table), before);
    assert_eq!(table.len(), 5000);
    for (i, net) in nets.iter().enumerate() {
        let f = table.find(net.network(), 1).expect("banned");
        assert_eq!((f.target, f.label), (*net, i as u32));
    }
}

#[test]
fn inserting_all_at_once_is_inserting_one_by_one() {
    let net = |s: &str| s.parse::<IpNet>().unwrap();
    let v = |seq| Version {
        ms: 1,
        instance: 1,
        seq,
    };
    let (all, one) = (Table::new(), Table::new());
    for t in [&all, &one] {
        assert_eq!(t.insert(net("10.0.0.1/32"), 50, 1, Version::ZERO), None);
    }
    let batch = [
        (net("10.0.0.1/32"), NEVER, 2, v(1)),
        (net("10.0.0.0/8"), 40, 3, v(2)),
        (net("2001:db8::/64"), NEVER, 4, v(3)),
        (net("2001:db8::/64"), 30, 5, v(4)),
        (net("2001:db8::1/128"), NEVER, 6, v(5)),
    ];
    let mut seen = vec![None; batch.len()];
    all.insert_all(&batch, |i, old| seen[i] = Some(old));
    let mut want = Vec::new();
    for (target, expires, label, version) in batch {
        want.push(Some(one.insert(target, expires, label, version)));
    }
    // The same final table; each entry saw what it replaced (the two on 2001:db8::/64
    // in their order in the batch).
    assert_eq!(seen, want);
    assert_eq!(all.len(), one.len());
    for ip in [
        "10.0.0.1",
        "10.1.2.3",
        "2001:db8::1",
        "2001:db8::2",
        "192.0.2.1",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(all.find(ip, 35), one.find(ip, 35), "{ip}");
    }
    // The earliest expiry is known to the sweeper.
    let mut swept = Vec::new();
    all.sweep(35, |f| swept.push(f.target));
    assert_eq!(swept, [net("2001:db8::/64")]);
}

#[test]
fn entries_are_small() {
    assert_eq!(std::mem::size_of::<Entry<u32>>(), 32);
    assert_eq!(std::mem::size_of::<Entry<[u32; 4]>>(), 44);
}
