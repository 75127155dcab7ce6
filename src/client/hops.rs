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
