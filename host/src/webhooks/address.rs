//! Where an endpoint may point. Admins' endpoints anywhere; users' only at public
//! addresses unless the platform allows private ones, checked when the endpoint is
//! added and again at each delivery, against the address actually connected to (a
//! name that resolved to a public address then may resolve to 127.0.0.1 later).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

/// The longest URL an endpoint may have.
pub const URL_MAX: usize = 2048;

/// Why a URL cannot be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressProblem {
    #[error("{0}")]
    Invalid(String),
    #[error("{host} does not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
    #[error("{host} is {ip}, an address inside the platform's network (loopback, private, link-local or the like); user endpoints must be reachable from the internet")]
    Internal { host: String, ip: IpAddr },
}

impl AddressProblem {
    pub fn code(&self) -> &'static str {
        match self {
            AddressProblem::Invalid(_) => "webhook.url.invalid",
            AddressProblem::Unresolvable { .. } => "webhook.url.unresolvable",
            AddressProblem::Internal { .. } => "webhook.url.private",
        }
    }
}

/// An http(s) URL with a host, of sane length.
pub fn parse_url(raw: &str) -> Result<Url, AddressProblem> {
    if raw.len() > URL_MAX {
        return Err(AddressProblem::Invalid(format!(
            "the URL is {} characters long, more than the {URL_MAX} allowed",
            raw.len()
        )));
    }
    let url = Url::parse(raw).map_err(|e| {
        AddressProblem::Invalid(format!("{raw:?} is not a URL ({e}); give e.g. \"https://hooks.example.com/warship\""))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AddressProblem::Invalid(format!("{raw:?} is not http(s); webhooks are HTTP POSTs")));
    }
    if url.host().is_none() {
        return Err(AddressProblem::Invalid(format!("{raw:?} names no host")));
    }
    Ok(url)
}

/// Loopback, private, link-local, shared (CGNAT), unspecified, multicast, broadcast,
/// documentation and unique-local addresses: none of them is the internet.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal_v4(v4),
            None => is_internal_v6(v6),
        },
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, carrier-grade NAT; 198.18.0.0/15, benchmarking; 240/4, reserved.
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
}

/// The addresses `url` names, every one outside the platform's network unless
/// `private_ok`. Deliveries connect to the first, so the check holds for the
/// connection made.
pub async fn resolve(url: &Url, private_ok: bool) -> Result<Vec<SocketAddr>, AddressProblem> {
    let port = url.port_or_known_default().unwrap_or(80);
    let (host, addrs) = match url.host() {
        Some(Host::Ipv4(ip)) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
        Some(Host::Ipv6(ip)) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
        Some(Host::Domain(name)) => {
            let looked_up = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((name, port))).await;
            let unresolvable = |reason: String| AddressProblem::Unresolvable { host: name.to_owned(), reason };
            let addrs: Vec<SocketAddr> = match looked_up {
                Ok(Ok(addrs)) => addrs.collect(),
                Ok(Err(e)) => return Err(unresolvable(e.to_string())),
                Err(_) => return Err(unresolvable("the name service took more than 5 s".into())),
            };
            if addrs.is_empty() {
                return Err(unresolvable("no addresses".into()));
            }
            (name.to_owned(), addrs)
        }
        None => return Err(AddressProblem::Invalid("the URL names no host".into())),
    };
    if !private_ok {
        if let Some(inside) = addrs.iter().find(|a| is_internal(a.ip())) {
            return Err(AddressProblem::Internal { host, ip: inside.ip() });
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_told_from_public_ones() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(inside.parse().unwrap()), "{inside} is internal");
        }
        for outside in ["1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "::ffff:1.1.1.1"] {
            assert!(!is_internal(outside.parse().unwrap()), "{outside} is public");
        }
    }

    #[test]
    fn only_http_urls_with_a_host_are_taken() {
        assert!(parse_url("https://hooks.example.com/warship").is_ok());
        assert!(parse_url("http://127.0.0.1:9000/x").is_ok());
        for bad in ["ftp://example.com/", "hooks.example.com", "file:///etc/passwd", "http://"] {
            assert_eq!(parse_url(bad).map_err(|e| e.code()), Err("webhook.url.invalid"), "{bad}");
        }
        assert!(parse_url(&format!("https://example.com/{}", "a".repeat(URL_MAX))).is_err());
    }

    #[tokio::test]
    async fn literal_and_named_internal_addresses_are_refused_unless_allowed() {
        let loopback = parse_url("http://127.0.0.1:9/hook").unwrap();
        assert_eq!(resolve(&loopback, false).await.map_err(|e| e.code()), Err("webhook.url.private"));
        assert_eq!(resolve(&loopback, true).await.unwrap(), vec![SocketAddr::from(([127, 0, 0, 1], 9))]);
        let metadata = parse_url("http://169.254.169.254/latest/meta-data").unwrap();
        assert_eq!(resolve(&metadata, false).await.map_err(|e| e.code()), Err("webhook.url.private"));
        let named = parse_url("http://localhost:9/hook").unwrap();
        assert_eq!(resolve(&named, false).await.map_err(|e| e.code()), Err("webhook.url.private"));
        let v6 = parse_url("http://[::1]:9/").unwrap();
        assert_eq!(resolve(&v6, false).await.map_err(|e| e.code()), Err("webhook.url.private"));
    }
}
