//! The compiled first-match matcher, and the plain linear scan it must agree with.
//!
//! An ordered list of rules, each a verdict over some networks, is flattened at build
//! time into two sorted tables of disjoint address intervals (one for IPv4, one for IPv6),
//! each interval labelled with the first rule that contains it. A lookup is then one
//! binary search: O(log n) whatever the rule count, where a scan is O(n).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::rules::Verdict;

/// The outcome of matching one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Admit or refuse.
    pub verdict: Verdict,
    /// The index of the rule that decided, or `None` when no rule matched and the default applied.
    pub rule: Option<usize>,
}

/// Marks an interval that no rule covers.
const NONE: u32 = u32::MAX;

/// A compiled, immutable rule set: the verdict of an address is that of the first rule
/// containing it, else the default. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are
/// matched as their IPv4 address, as nginx does; every other IPv6 address stays IPv6.
///
/// ```
/// use rocket_allow::{Matcher, Verdict};
/// let m = Matcher::new(Verdict::Allow, [
///     (Verdict::Allow, vec!["10.1.0.0/16".parse().unwrap()]),
///     (Verdict::Deny, vec!["10.0.0.0/8".parse().unwrap()]),
/// ]);
/// assert_eq!(m.decide("10.1.2.3".parse().unwrap()).verdict, Verdict::Allow);
/// assert_eq!(m.decide("10.2.0.1".parse().unwrap()).rule, Some(1));
/// assert_eq!(m.decide("::ffff:10.2.0.1".parse().unwrap()).verdict, Verdict::Deny);
/// assert_eq!(m.decide("192.0.2.1".parse().unwrap()).rule, None);
/// ```
#[derive(Debug, Clone)]
pub struct Matcher {
    default: Verdict,
    verdicts: Vec<Verdict>,
    networks: usize,
    v4: Table<u32>,
    v6: Table<u128>,
}

impl Matcher {
    /// Compiles an ordered list of rules, each a verdict and the networks it covers.
    /// A rule with no networks (say, a host name that does not resolve yet) matches
    /// nothing but keeps its index. Runs in O(n log n) for n networks.
    ///
    /// ```
    /// use rocket_allow::{Matcher, Verdict};
    /// let m = Matcher::new(Verdict::Deny, [(Verdict::Allow, vec!["::1/128".parse().unwrap()])]);
    /// assert_eq!(m.rule_count(), 1);
    /// assert_eq!(m.decide("::1".parse().unwrap()).verdict, Verdict::Allow);
    /// assert_eq!(m.decide("::2".parse().unwrap()).verdict, Verdict::Deny);
    /// ```
    pub fn new<I, N>(default: Verdict, rules: I) -> Matcher
    where
        I: IntoIterator<Item = (Verdict, N)>,
        N: IntoIterator<Item = IpNet>,
    {
        let mut verdicts = Vec::new();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (index, (verdict, nets)) in rules.into_iter().enumerate() {
            let index = u32::try_from(index).expect("fewer than 2^32 - 1 rules");
            assert!(index < NONE, "fewer than 2^32 - 1 rules");
            verdicts.push(verdict);
            for net in nets {
                match net {
                    IpNet::V4(n) => {
                        v4.push((u32::from(n.network()), u32::from(n.broadcast()), index))
                    }
                    IpNet::V6(n) => {
                        v6.push((u128::from(n.network()), u128::from(n.broadcast()), index))
                    }
                }
            }
        }
        Matcher {
            default,
            verdicts,
            networks: v4.len() + v6.len(),
            v4: Table::build(v4),
            v6: Table::build(v6),
        }
    }

    /// The verdict for `ip`, and the rule that gave it.
    ///
    /// ```
    /// use rocket_allow::{Matcher, Verdict};
    /// let m = Matcher::new(Verdict::Allow, [(Verdict::Deny, vec!["0.0.0.0/0".parse().unwrap()])]);
    /// assert_eq!(m.decide("::1".parse().unwrap()).verdict, Verdict::Allow); // IPv6 is not in 0.0.0.0/0
    /// ```
    #[inline]
    pub fn decide(&self, ip: IpAddr) -> Decision {
        let index = match ip {
            IpAddr::V4(v4) => self.v4.get(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.v4.get(u32::from(v4)),
                None => self.v6.get(u128::from(v6)),
            },
        };
        if index == NONE {
            Decision {
                verdict: self.default,
                rule: None,
            }
        } else {
            Decision {
                verdict: self.verdicts[index as usize],
                rule: Some(index as usize),
            }
        }
    }

    /// Whether any rule contains `ip` (the default is not consulted). Used for trusted proxy sets.
    ///
    /// ```
    /// use rocket_allow::{Matcher, Verdict};
    /// let m = Matcher::new(Verdict::Deny, [(Verdict::Allow, vec!["10.0.0.0/8".parse().unwrap()])]);
    /// assert!(m.contains("10.9.9.9".parse().unwrap()));
    /// assert!(!m.contains("11.0.0.0".parse().unwrap()));
    /// ```
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.decide(ip).rule.is_some()
    }

    /// The verdict when no rule matches.
    ///
    /// ```
    /// use rocket_allow::{Matcher, Verdict};
    /// let m = Matcher::new(Verdict::Deny, Vec::<(Verdict, Vec<ipnet::IpNet>)>::new());
    /// assert_eq!(m.default_verdict(), Verdict::Deny);
    /// ```
    pub fn default_verdict(&self) -> Verdict {
        self.default
    }

    /// How many rules were compiled.
    ///
    /// ```
    /// use rocket_allow::{Matcher, Verdict};
    /// let m = Matcher::new(Verdict::Allow, [(Verdict::Deny, Vec::new())]);
    /// assert_eq!(m.rule_count(), 1);
    /// ```
    pub fn rule_count(&self) -> usize {
        self.verdicts.len()
    }

    /// How many networks were compiled, over all rules (a set or host name counts each of
    /// its networks).
    ///
    /// ```
    /// use rocket_allow::{Matcher, Verdict};
    /// let nets = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    /// let m = Matcher::new(Verdict::Allow, [(Verdict::Deny, nets), (Verdict::Allow, vec![])]);
    /// assert_eq!(m.network_count(), 2);
    /// ```
    pub fn network_count(&self) -> usize {
        self.networks
    }

    /// Heap bytes held by the compiled tables (what a rule set costs in memory).
    ///
    /// ```
    /// use rocket_allow::{Matcher, Verdict};
    /// let m = Matcher::new(Verdict::Allow, [(Verdict::Deny, vec!["10.0.0.0/8".parse().unwrap()])]);
    /// assert!(m.memory_bytes() > 0);
    /// ```
    pub fn memory_bytes(&self) -> usize {
        self.verdicts.capacity() * std::mem::size_of::<Verdict>()
            + self.v4.memory_bytes()
            + self.v6.memory_bytes()
    }
}

/// The reference semantics: test each rule's networks in order, first match wins.
/// O(n) per address; kept public so benchmarks and property tests can compare.
///
/// ```
/// use rocket_allow::{LinearScan, Verdict};
/// let s = LinearScan::new(Verdict::Allow, [(Verdict::Deny, vec!["10.0.0.0/8".parse().unwrap()])]);
/// assert_eq!(s.decide("10.0.0.1".parse().unwrap()).verdict, Verdict::Deny);
/// ```
#[derive(Debug, Clone)]
pub struct LinearScan {
    default: Verdict,
    rules: Vec<(Verdict, Vec<IpNet>)>,
}

impl LinearScan {
    /// Keeps the rules as given; see [`Matcher::new`] for the input shape.
    ///
    /// ```
    /// use rocket_allow::{LinearScan, Verdict};
    /// let s = LinearScan::new(Verdict::Deny, [(Verdict::Allow, vec!["::/0".parse().unwrap()])]);
    /// assert_eq!(s.decide("::1".parse().unwrap()).rule, Some(0));
    /// ```
    pub fn new<I, N>(default: Verdict, rules: I) -> LinearScan
    where
        I: IntoIterator<Item = (Verdict, N)>,
        N: IntoIterator<Item = IpNet>,
    {
        LinearScan {
            default,
            rules: rules
                .into_iter()
                .map(|(v, nets)| (v, nets.into_iter().collect()))
                .collect(),
        }
    }

    /// The verdict for `ip` by scanning every rule in order.
    ///
    /// ```
    /// use rocket_allow::{LinearScan, Verdict};
    /// let s = LinearScan::new(Verdict::Allow, [(Verdict::Deny, vec!["10.0.0.0/8".parse().unwrap()])]);
    /// assert_eq!(s.decide("::ffff:10.0.0.1".parse().unwrap()).verdict, Verdict::Deny);
    /// ```
    pub fn decide(&self, ip: IpAddr) -> Decision {
        let ip = ip.to_canonical();
        for (index, (verdict, nets)) in self.rules.iter().enumerate() {
            if nets.iter().any(|n| n.contains(&ip)) {
                return Decision {
                    verdict: *verdict,
                    rule: Some(index),
                };
            }
        }
        Decision {
            verdict: self.default,
            rule: None,
        }
    }
}

/// An unsigned address as an integer key.
trait Key: Copy + Ord + Default {
    fn succ(self) -> Option<Self>;
}

impl Key for u32 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Key for u128 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
}

/// Disjoint intervals covering the whole key space: interval `i` runs from `starts[i]`
/// up to `starts[i + 1] - 1` and belongs to rule `values[i]` (or [`NONE`]).
/// `starts[0]` is always 0, so every key falls in exactly one interval.
#[derive(Debug, Clone)]
struct Table<K> {
    starts: Vec<K>,
    values: Vec<u32>,
}

impl<K: Key> Table<K> {
    /// Sweeps the interval end points in address order, keeping the active rules in a
    /// min-heap: at every point the owner is the lowest (first) active rule index.
    /// Removals are lazy (counted, popped when they reach the top).
    fn build(intervals: Vec<(K, K, u32)>) -> Table<K> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;

        // (position, is_start, rule): a rule enters at its first address and leaves one past its last.
        let mut events: Vec<(K, bool, u32)> = Vec::with_capacity(intervals.len() * 2);
        for (lo, hi, rule) in intervals {
            events.push((lo, true, rule));
            if let Some(end) = hi.succ() {
                events.push((end, false, rule));
            }
        }
        events.sort_unstable_by_key(|e| e.0);

        let mut heap = BinaryHeap::new();
        let mut removed: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
        let mut starts = vec![K::default()];
        let mut values = vec![NONE];
        let mut i = 0;
        while i < events.len() {
            let pos = events[i].0;
            while i < events.len() && events[i].0 == pos {
                let (_, is_start, rule) = events[i];
                if is_start {
                    heap.push(Reverse(rule));
                } else {
                    *removed.entry(rule).or_insert(0) += 1;
                }
                i += 1;
            }
            while let Some(&Reverse(top)) = heap.peek() {
                match removed.get_mut(&top) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        heap.pop();
                    }
                    _ => break,
                }
            }
            let owner = heap.peek().map_or(NONE, |r| r.0);
            if pos == K::default() {
                values[0] = owner;
            } else if *values.last().expect("never empty") != owner {
                starts.push(pos);
                values.push(owner);
            }
        }
        starts.shrink_to_fit();
        values.shrink_to_fit();
        Table { starts, values }
    }

    #[inline]
    fn get(&self, key: K) -> u32 {
        // starts[0] == 0 <= key, so the point is at least 1.
        let i = self.starts.partition_point(|&s| s <= key);
        self.values[i - 1]
    }

    fn memory_bytes(&self) -> usize {
        self.starts.capacity() * std::mem::size_of::<K>() + self.values.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_match_wins_in_both_orders() {
        let a = Matcher::new(
            Verdict::Allow,
            [
                (Verdict::Allow, nets(&["127.0.0.1/32"])),
                (Verdict::Deny, nets(&["0.0.0.0/0"])),
            ],
        );
        assert_eq!(
            a.decide(ip("127.0.0.1")),
            Decision {
                verdict: Verdict::Allow,
                rule: Some(0)
            }
        );
        assert_eq!(
            a.decide(ip("127.0.0.2")),
            Decision {
                verdict: Verdict::Deny,
                rule: Some(1)
            }
        );
        // Swapped: the deny-all shadows localhost (Flask-Allow's documented behaviour).
        let b = Matcher::new(
            Verdict::Allow,
            [
                (Verdict::Deny, nets(&["0.0.0.0/0"])),
                (Verdict::Allow, nets(&["127.0.0.1/32"])),
            ],
        );
        assert_eq!(
            b.decide(ip("127.0.0.1")),
            Decision {
                verdict: Verdict::Deny,
                rule: Some(0)
            }
        );
    }

    #[test]
    fn network_boundaries_ipv4() {
        let m = Matcher::new(Verdict::Allow, [(Verdict::Deny, nets(&["10.1.0.0/16"]))]);
        assert_eq!(m.decide(ip("10.1.0.0")).verdict, Verdict::Deny);
        assert_eq!(m.decide(ip("10.1.255.255")).verdict, Verdict::Deny);
        assert_eq!(
            m.decide(ip("10.0.255.255")),
            Decision {
                verdict: Verdict::Allow,
                rule: None
            }
        );
        assert_eq!(
            m.decide(ip("10.2.0.0")),
            Decision {
                verdict: Verdict::Allow,
                rule: None
            }
        );
    }

    #[test]
    fn network_boundaries_ipv6() {
        let m = Matcher::new(Verdict::Allow, [(Verdict::Deny, nets(&["2001:db8::/32"]))]);
        assert_eq!(m.decide(ip("2001:db8::")).verdict, Verdict::Deny);
        assert_eq!(
            m.decide(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"))
                .verdict,
            Verdict::Deny
        );
        assert_eq!(
            m.decide(ip("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff")).rule,
            None
        );
        assert_eq!(m.decide(ip("2001:db9::")).rule, None);
    }

    #[test]
    fn ends_of_the_address_space() {
        let m = Matcher::new(
            Verdict::Allow,
            [
                (Verdict::Deny, nets(&["255.255.255.255/32", "0.0.0.0/32"])),
                (
                    Verdict::Deny,
                    nets(&["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "::/128"]),
                ),
            ],
        );
        assert_eq!(m.decide(ip("255.255.255.255")).rule, Some(0));
        assert_eq!(m.decide(ip("0.0.0.0")).rule, Some(0));
        assert_eq!(m.decide(ip("255.255.255.254")).rule, None);
        assert_eq!(m.decide(ip("0.0.0.1")).rule, None);
        assert_eq!(
            m.decide(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")).rule,
            Some(1)
        );
        assert_eq!(m.decide(ip("::")).rule, Some(1));
        assert_eq!(m.decide(ip("::2")).rule, None);
    }

    #[test]
    fn mapped_clients_match_ipv4_rules_but_loopback_v6_stays_v6() {
        let m = Matcher::new(
            Verdict::Deny,
            [
                (Verdict::Allow, nets(&["192.0.2.0/24"])),
                (Verdict::Allow, nets(&["0.0.0.1/32"])),
            ],
        );
        assert_eq!(m.decide(ip("::ffff:192.0.2.7")).rule, Some(0));
        // `::1` must not be read as 0.0.0.1 (what Ipv6Addr::to_ipv4 would do).
        assert_eq!(m.decide(ip("::1")).rule, None);
        let s = LinearScan::new(
            Verdict::Deny,
            [
                (Verdict::Allow, nets(&["192.0.2.0/24"])),
                (Verdict::Allow, nets(&["0.0.0.1/32"])),
            ],
        );
        assert_eq!(s.decide(ip("::1")).rule, None);
    }

    #[test]
    fn empty_rules_keep_their_index() {
        let m = Matcher::new(
            Verdict::Deny,
            [
                (Verdict::Deny, nets(&[])),
                (Verdict::Allow, nets(&["::1/128"])),
            ],
        );
        assert_eq!(m.decide(ip("::1")).rule, Some(1));
    }

    #[test]
    fn shadowed_and_nested_rules() {
        let m = Matcher::new(
            Verdict::Allow,
            [
                (Verdict::Allow, nets(&["10.0.5.0/24"])),
                (Verdict::Deny, nets(&["10.0.0.0/16"])),
                (Verdict::Allow, nets(&["10.0.5.7/32"])), // shadowed by 0
                (Verdict::Deny, nets(&["10.0.0.0/8"])),
            ],
        );
        assert_eq!(m.decide(ip("10.0.5.7")).rule, Some(0));
        assert_eq!(m.decide(ip("10.0.4.255")).rule, Some(1));
        assert_eq!(m.decide(ip("10.0.6.0")).rule, Some(1));
        assert_eq!(m.decide(ip("10.1.0.0")).rule, Some(3));
        assert_eq!(m.decide(ip("11.0.0.0")).rule, None);
    }

    fn arb_net() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            // Few distinct high bits so that networks nest and overlap often.
            (0u32..16, 0u8..=32).prop_map(|(hi, p)| {
                let addr = std::net::Ipv4Addr::from(hi << 28 | (hi * 0x0101_0101) & 0x0fff_ffff);
                IpNet::from(ipnet::Ipv4Net::new(addr, p).unwrap().trunc())
            }),
            (any::<u32>(), 0u8..=32).prop_map(|(a, p)| {
                IpNet::from(ipnet::Ipv4Net::new(a.into(), p).unwrap().trunc())
            }),
            (0u128..16, 0u8..=128).prop_map(|(hi, p)| {
                let addr =
                    std::net::Ipv6Addr::from(hi << 124 | hi.wrapping_mul(0x0101_0101_0101_0101));
                IpNet::from(ipnet::Ipv6Net::new(addr, p).unwrap().trunc())
            }),
            (96u8..=128, any::<u32>()).prop_map(|(p, a)| {
                // Networks inside the mapped range exercise the IPv4 view of mapped clients.
                let addr = std::net::Ipv4Addr::from(a).to_ipv6_mapped();
                IpNet::from(ipnet::Ipv6Net::new(addr, p).unwrap().trunc())
            }),
        ]
    }

    fn arb_rules() -> impl Strategy<Value = Vec<(Verdict, Vec<IpNet>)>> {
        prop::collection::vec(
            (
                prop_oneof![Just(Verdict::Allow), Just(Verdict::Deny)],
                prop::collection::vec(arb_net(), 0..3),
            ),
            0..40,
        )
    }

    /// Every network's first and last address and their neighbours just outside.
    fn probes(rules: &[(Verdict, Vec<IpNet>)]) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for net in rules.iter().flat_map(|r| r.1.iter()) {
            match net {
                IpNet::V4(n) => {
                    let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
                    for a in [Some(lo), Some(hi), lo.checked_sub(1), hi.checked_add(1)]
                        .into_iter()
                        .flatten()
                    {
                        out.push(IpAddr::from(std::net::Ipv4Addr::from(a)));
                        out.push(IpAddr::from(std::net::Ipv4Addr::from(a).to_ipv6_mapped()));
                    }
                }
                IpNet::V6(n) => {
                    let (lo, hi) = (u128::from(n.network()), u128::from(n.broadcast()));
                    for a in [Some(lo), Some(hi), lo.checked_sub(1), hi.checked_add(1)]
                        .into_iter()
                        .flatten()
                    {
                        out.push(IpAddr::from(std::net::Ipv6Addr::from(a)));
                    }
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn compiled_agrees_with_linear_scan(
            rules in arb_rules(),
            default in prop_oneof![Just(Verdict::Allow), Just(Verdict::Deny)],
            extra in prop::collection::vec(any::<u32>(), 0..20),
            extra6 in prop::collection::vec(any::<u128>(), 0..20),
        ) {
            let compiled = Matcher::new(default, rules.clone());
            let linear = LinearScan::new(default, rules.clone());
            let mut addrs = probes(&rules);
            addrs.extend(extra.into_iter().map(|a| IpAddr::from(std::net::Ipv4Addr::from(a))));
            addrs.extend(extra6.into_iter().map(|a| IpAddr::from(std::net::Ipv6Addr::from(a))));
            addrs.extend(["::1", "::", "0.0.0.0", "255.255.255.255", "::ffff:0:0"].map(ip));
            for a in addrs {
                prop_assert_eq!(compiled.decide(a), linear.decide(a), "address {}", a);
            }
        }
    }
}
