//! Addresses and networks as text, fast: log lines print several per request, and the
//! standard `Display` of `Ipv4Addr` goes through the formatter's padding machinery for
//! every octet. IPv6 keeps the standard form (its compression rules are not worth
//! repeating here).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

/// An address, printed as `Display` does.
pub(crate) struct IpText(pub IpAddr);

/// A network, printed as `Display` does (`10.0.0.0/8`).
pub(crate) struct NetText(pub IpNet);

/// Writes `n` (at most 3 digits) into `buf` at `at`; returns the new end.
fn digits(buf: &mut [u8], mut at: usize, n: u8) -> usize {
    if n >= 100 {
        buf[at] = b'0' + n / 100;
        at += 1;
    }
    if n >= 10 {
        buf[at] = b'0' + (n / 10) % 10;
        at += 1;
    }
    buf[at] = b'0' + n % 10;
    at + 1
}

/// `a.b.c.d` (and `/len` when given) into a stack buffer.
fn v4(f: &mut fmt::Formatter<'_>, ip: Ipv4Addr, len: Option<u8>) -> fmt::Result {
    let mut buf = [0u8; 19];
    let mut at = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[at] = b'.';
            at += 1;
        }
        at = digits(&mut buf, at, octet);
    }
    if let Some(len) = len {
        buf[at] = b'/';
        at = digits(&mut buf, at + 1, len);
    }
    // Only ASCII digits, dots and a slash were written.
    f.write_str(std::str::from_utf8(&buf[..at]).map_err(|_| fmt::Error)?)
}

impl fmt::Display for IpText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(ip) => v4(f, ip, None),
            IpAddr::V6(ip) => ip.fmt(f),
        }
    }
}

impl fmt::Display for NetText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpNet::V4(n) => v4(f, n.addr(), Some(n.prefix_len())),
            IpNet::V6(n) => n.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn same_text_as_display(bits: u32, len in 0u8..=32) {
            let ip = IpAddr::V4(Ipv4Addr::from(bits));
            prop_assert_eq!(IpText(ip).to_string(), ip.to_string());
            let net = IpNet::new(ip, len).unwrap();
            prop_assert_eq!(NetText(net).to_string(), net.to_string());
        }
    }

    #[test]
    fn edges() {
        for s in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(IpText(ip).to_string(), s);
        }
        let net: IpNet = "0.0.0.0/0".parse().unwrap();
        assert_eq!(NetText(net).to_string(), "0.0.0.0/0");
    }
}
