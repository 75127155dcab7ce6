//! `publish_client_ip`: after deciding, the request carries the client decided on, so
//! `Request::client_ip()` and `Request::remote()` (and every crate built on them: rate
//! limiters, loggers) see the vetted address instead of whatever `X-Real-IP` a client sent.
//!
//! The peer and the client as read are kept in the request's local cache when they differ,
//! so this crate's guards and log lines (`via`) still know the proxy.

use std::net::{IpAddr, SocketAddr};

use rocket::http::Header;
use rocket::Request;

use crate::client::ClientAddr;

/// The request as it arrived, kept when the fairing published a client read from a
/// header (`Some`); `None` in the cache when it did not.
pub(crate) struct Received {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The client read from the forwarding header.
    pub client: ClientAddr,
}

/// What the fairing kept of the request as it arrived: `None` unless it published a client
/// read from a header. Only for after the fairing (guards, catchers).
pub(crate) fn received<'r>(req: &'r Request<'_>) -> Option<&'r Received> {
    req.local_cache(|| None::<Received>).as_ref()
}

/// Makes `client_ip()` and `remote()` return `client` (the peer's port is kept: the
/// client's own is not known). Allocates only when something changes besides the address
/// form: a client from a header, or an `ip_header` value to overwrite.
pub(crate) fn publish(req: &mut Request<'_>, client: ClientAddr) {
    let Some(peer) = req.remote() else { return };
    if client.ip != peer.ip().to_canonical() {
        req.local_cache(|| Some(Received { peer, client }));
    }
    if client.ip != peer.ip() {
        req.set_remote(SocketAddr::new(client.ip, peer.port()));
    }
    overwrite_ip_header(req, client.ip);
}

/// Marks a request whose client the fairing could not read: after the fairing (guards,
/// catchers) it stays unknown, whatever the headers say once published.
struct Unknown;

/// Whether the fairing could not read the client of `req` (and published the peer).
pub(crate) fn unknown(req: &Request<'_>) -> bool {
    req.local_cache(|| None::<Unknown>).is_some()
}

/// For a request whose client could not be read (refused): `client_ip()` is the peer, not
/// what the app's `ip_header` says, even when that header is the one a trusted proxy
/// reports the client in (Rocket would take a line the client wrote); this crate's guards
/// then know the client as unknown instead of reading the overwritten header again.
pub(crate) fn publish_unknown(req: &mut Request<'_>) {
    let Some(peer) = req.remote() else { return };
    req.local_cache(|| Some(Unknown));
    overwrite_ip_header(req, peer.ip().to_canonical());
}

/// Rocket's `real_ip()` believes the app's `ip_header` (X-Real-IP by default) from anyone:
/// a value other than `ip` is overwritten with it.
fn overwrite_ip_header(req: &mut Request<'_>, ip: IpAddr) {
    let Some(name) = req.rocket().config().ip_header.as_ref().map(|h| h.as_str()) else {
        return;
    };
    let agrees = {
        let mut values = req.headers().get(name);
        let first = values.next();
        first.is_none_or(|v| v.trim().parse::<IpAddr>() == Ok(ip)) && values.next().is_none()
    };
    if !agrees {
        let header = Header::new(name.to_string(), ip.to_string());
        req.replace_header(header);
    }
}
