//! The client's address, as limits see it: taken from the last trusted hop
//! of a forwarding header, and grouped: an IPv6 host (or home network) gets
//! a whole /64, so one of its addresses is as good as another.

use std::net::{IpAddr, Ipv6Addr};

/// The address limits are keyed by: the peer, or behind `trusted_proxies`
/// proxies that each append their peer to `forwarded` (`X-Forwarded-For`
/// style), the entry that many places from the end. Entries before it are
/// whatever the client sent and are ignored. A header with fewer entries
/// than that (a request that didn't come through every proxy) or with an
/// unreadable trusted entry falls back to the peer.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded: Option<&str>,
    trusted_proxies: usize,
) -> Option<IpAddr> {
    let from_header = forwarded.filter(|_| trusted_proxies > 0).and_then(|list| {
        let entries: Vec<&str> = list.split(',').map(str::trim).collect();
        let index = entries.len().checked_sub(trusted_proxies)?;
        parse_entry(entries[index])
    });
    from_header.or(peer).map(group)
}

/// One header entry: an address, possibly with a port (`1.2.3.4:5`,
/// `[2001:db8::1]:443`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Ok(socket) = entry.parse::<std::net::SocketAddr>() {
        return Some(socket.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|inner| inner.parse().ok())
}

/// IPv4 addresses stand for themselves; an IPv6 address stands for its /64
/// (what one subscriber or host is given), and an IPv4-mapped IPv6 address
/// for the IPv4 address inside it.
pub fn group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_entry_the_trusted_proxies_appended_wins_over_what_the_client_sent() {
        let peer = Some(ip("10.0.0.2"));
        // The client forged two entries; one proxy appended the real client.
        let header = Some("6.6.6.6, 7.7.7.7, 203.0.113.9");
        assert_eq!(client_address(peer, header, 1), Some(ip("203.0.113.9")));
        // Two proxies: the first appended the client, the second the first proxy.
        let header = Some("6.6.6.6, 203.0.113.9, 10.0.0.1");
        assert_eq!(client_address(peer, header, 2), Some(ip("203.0.113.9")));
    }

    #[test]
    fn a_short_or_unreadable_header_falls_back_to_the_peer() {
        let peer = Some(ip("198.51.100.4"));
        assert_eq!(client_address(peer, Some("203.0.113.9"), 2), peer);
        assert_eq!(client_address(peer, Some("garbage"), 1), peer);
        assert_eq!(client_address(peer, None, 1), peer);
        assert_eq!(client_address(peer, Some("203.0.113.9"), 0), peer);
    }

    #[test]
    fn ports_and_brackets_are_read() {
        assert_eq!(
            client_address(None, Some("203.0.113.9:5555"), 1),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_address(None, Some("[2001:db8:1:2::7]:443"), 1),
            Some(ip("2001:db8:1:2::"))
        );
    }

    #[test]
    fn ipv6_is_grouped_by_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            group(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            group(ip("2001:db8:1:2::1")),
            group(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(group(ip("2001:db8:1:2::1")), group(ip("2001:db8:1:3::1")));
        assert_eq!(group(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(group(ip("192.0.2.7")), ip("192.0.2.7"));
    }
}
