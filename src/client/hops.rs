//! `trusted_hops`: the client is the N-th address from the right of a list header, for
//! load balancers whose own addresses cannot be listed (Google Cloud's appends
//! `<client>, <lb>`). Entries right of the N-th must be readable; text left of it is never
//! parsed.

use std::net::IpAddr;

use super::{ClientAddr, Node, Unreadable};

/// The `hops`-th hop from the right (1 = the rightmost) of a list header sent by the
/// trusted `peer`. Fewer hops, an unreadable one on the way, or an opaque one at that
/// position refuse the request.
pub(super) fn at_hop(
    peer: IpAddr,
    hops: impl Iterator<Item = Option<Node>>,
    n: usize,
) -> Result<ClientAddr, Unreadable> {
    for (i, hop) in hops.take(n).enumerate() {
        match hop {
            None => {
                return Err(Unreadable::Malformed(
                    "malformed forwarding header entry from a trusted proxy",
                ))
            }
            Some(Node::Addr(ip)) if i + 1 == n => {
                return Ok(ClientAddr::header(ip.to_canonical(), peer, None))
            }
            Some(Node::Opaque) if i + 1 == n => {
                return Err(Unreadable::Malformed(
                    "unknown or obfuscated client address from a trusted proxy",
                ))
            }
            // A proxy's own entry: counted, not used.
            Some(_) => {}
        }
    }
    Err(Unreadable::Malformed(
        "forwarding header has fewer addresses than trusted_hops",
    ))
}

#[cfg(test)]
mod tests {
    use crate::client::{client_addr_at, ClientIpHeader, Unreadable};
    use crate::decide::matcher::Matcher;
    use crate::rules::Verdict;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn trusted() -> Matcher {
        Matcher::new(
            Verdict::Deny,
            [(Verdict::Allow, vec!["10.0.0.0/8".parse().unwrap()])],
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Whatever a client writes to the left, the N-th entry from the right decides;
        /// with fewer entries than N, the request is refused.
        #[test]
        fn the_nth_entry_from_the_right_decides(
            junk in ".{0,40}",
            client in any::<u32>(),
            proxies in prop::collection::vec(any::<u32>(), 0..5),
            extra in 0usize..3,
        ) {
            let client = IpAddr::from(Ipv4Addr::from(client));
            let mut entries = vec![client.to_string()];
            entries.extend(proxies.iter().map(|p| Ipv4Addr::from(*p).to_string()));
            let n = entries.len();
            let line = format!("{junk}, {}", entries.join(", "));
            let peer = "10.0.0.1".parse().unwrap();
            let xff = ClientIpHeader::XForwardedFor;
            let c = client_addr_at(peer, &xff, &[&line], &trusted(), Some(n));
            prop_assert_eq!(c.map(|c| c.ip), Ok(client));
            // More hops than the header holds: refused.
            let only = entries.join(", ");
            let c = client_addr_at(peer, &xff, &[&only], &trusted(), Some(n + 1 + extra));
            prop_assert!(matches!(c, Err(Unreadable::Malformed(_))));
        }
    }
}
