//! Who is calling: the user agent and the client address (behind the
//! reverse proxies of `TRUSTED_PROXIES`), resolved once per request by
//! [`resolve`] for both adapters (the JSON API and the pages) and read back
//! with [`of`]. Sessions, the audit log and throttling all see the same
//! address for one request.

use crate::services::ClientInfo;
use axum::{
    extract::{ConnectInfo, Request, State},
    http::{header, HeaderMap},
    middleware::Next,
    response::Response,
};
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

/// The reverse proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Arc<[ipnet::IpNet]>);

impl TrustedProxies {
    /// The proxies of `TRUSTED_PROXIES`.
    pub fn new(networks: &[ipnet::IpNet]) -> Self {
        TrustedProxies(networks.into())
    }
}

/// Middleware: resolves the [`ClientInfo`] of the request once and puts it
/// into the request extensions.
pub async fn resolve(
    State(trusted): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = client_info(request.headers(), request.extensions(), &trusted.0);
    request.extensions_mut().insert(client);
    next.run(request).await
}

/// The client of a request, as [`resolve`] found it (unknown if the
/// middleware did not run).
pub fn of(extensions: &axum::http::Extensions) -> ClientInfo {
    extensions.get::<ClientInfo>().cloned().unwrap_or_default()
}

/// The user agent and address of a request (see [`client_ip`]).
fn client_info(
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    trusted: &[ipnet::IpNet],
) -> ClientInfo {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    // As axum's `ConnectInfo` extractor does: the real peer, else the mock one
    // (`MockConnectInfo`, used when the router is driven without a socket).
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .or_else(|| {
            extensions
                .get::<axum::extract::connect_info::MockConnectInfo<SocketAddr>>()
                .map(|mock| mock.0.ip())
        });
    let ip = peer.map(|peer| {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        client_ip(peer, forwarded, trusted).to_string()
    });
    ClientInfo::new(user_agent, ip)
}

/// The client's address: the socket peer, unless the peer is a trusted
/// proxy; then `X-Forwarded-For` is read from the right, skipping trusted
/// hops, and the first untrusted hop is the client. Hops to the left of it
/// were written by the client and are never believed. A forged header from
/// an untrusted peer changes nothing.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if is_trusted(&ip) => client = ip,
            Some(ip) => return ip,
            // Garbage where an address belongs: stop at the last trusted hop.
            None => return client,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]:port` or `v4:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod client_ip_tests {
    use super::client_ip;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let forged = ["203.0.113.9, 10.0.0.1"];
        assert_eq!(
            client_ip(ip("198.51.100.7"), forged.into_iter(), &[]),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(
                ip("198.51.100.7"),
                forged.into_iter(),
                &nets(&["10.0.0.0/8"])
            ),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_trusted_peer_yields_the_right_most_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/8", "192.168.1.1/32"]);
        // client-forged, real client, inner proxy (trusted) -> peer is a trusted proxy
        let header = ["1.1.1.1, 203.0.113.9", "10.1.1.1"];
        assert_eq!(
            client_ip(ip("192.168.1.1"), header.into_iter(), &trusted),
            ip("203.0.113.9")
        );
        // Only trusted hops: the left-most of them.
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["10.0.0.3"].into_iter(), &trusted),
            ip("10.0.0.3")
        );
        // No header at all: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.2"), std::iter::empty(), &trusted),
            ip("10.0.0.2")
        );
        // Garbage hop: stop at the last trusted address.
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["evil, nonsense"].into_iter(), &trusted),
            ip("10.0.0.2")
        );
        // Ports and IPv6.
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["[2001:db8::1]:4711"].into_iter(), &trusted),
            ip("2001:db8::1")
        );
    }
}
