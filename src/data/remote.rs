//! Fetching image data from URLs the operator allowed (`download_hosts`),
//! checked here in the core: the component's manifest grant also covers the
//! S3 endpoint and Keystone, which a client must not be able to reach
//! through web-download.
//!
//! Patterns follow Spin's `allowed_outbound_hosts` (`https://*`,
//! `http://127.0.0.1:3150`, `https://*.example.com:*`), comma separated.
//! Loopback, link-local (the cloud metadata service), private, shared and
//! unspecified addresses, and `localhost`, are refused unless a pattern
//! names that very host: a wildcard never reaches them. Redirects are
//! followed (at most [`MAX_REDIRECTS`]) only to allowed URLs. A host name
//! that resolves to such an address cannot be caught here — the component
//! never sees the resolution — so operators name hosts, not wildcards,
//! where that matters.

use std::net::IpAddr;

use crate::ports::outbound::send_idempotent;
use crate::ports::{HttpClient, OutRequest, OutResponse};

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// Why a URL was not fetched. The texts name the URL, never a transport error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// Not an http(s) URL with a host.
    BadUrl(String),
    /// Not allowed by `download_hosts`.
    NotAllowed(String),
    /// No answer, an error status, or too many redirects.
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::BadUrl(u) => write!(f, "{u} is not an http(s) URL"),
            FetchError::NotAllowed(u) => write!(f, "{u} is not an allowed download host"),
            FetchError::Failed(why) => write!(f, "could not fetch {why}"),
        }
    }
}

/// A URL split into what the patterns judge.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    scheme: String,
    host: String,
    port: u16,
}

fn parse(url: &str) -> Option<Target> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None; // userinfo hides the real host from readers
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(Target {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// Addresses a wildcard must not reach.
fn is_special(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        Ok(IpAddr::V6(a)) => {
            let s = a.segments();
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped()
                    .is_some_and(|v4| is_special(&v4.to_string()))
        }
        Err(_) => false,
    }
}

/// The operator's download hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadHosts {
    patterns: Vec<(String, String, Option<String>)>,
}

impl DownloadHosts {
    /// Parses `download_hosts`: comma-separated `scheme://host[:port]`.
    pub fn parse(text: &str) -> Self {
        let patterns = text
            .split(',')
            .filter_map(|p| {
                let p = p.trim().trim_end_matches('/');
                let (scheme, rest) = p.split_once("://")?;
                let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
                    let (h, after) = v6.split_once(']')?;
                    (h.to_string(), after.strip_prefix(':').map(str::to_string))
                } else {
                    match rest.rsplit_once(':') {
                        Some((h, port)) => (h.to_string(), Some(port.to_string())),
                        None => (rest.to_string(), None),
                    }
                };
                Some((scheme.to_ascii_lowercase(), host.to_ascii_lowercase(), port))
            })
            .collect();
        DownloadHosts { patterns }
    }

    /// Whether `url` may be fetched.
    pub fn check(&self, url: &str) -> Result<(), FetchError> {
        let t = parse(url).ok_or_else(|| FetchError::BadUrl(url.to_string()))?;
        let allowed = self.patterns.iter().any(|(scheme, host, port)| {
            let scheme_ok = scheme == "*" || *scheme == t.scheme;
            let named = *host == t.host;
            let host_ok = named
                || (!is_special(&t.host)
                    && (host == "*"
                        || host
                            .strip_prefix("*.")
                            .is_some_and(|suffix| t.host.ends_with(&format!(".{suffix}")))));
            let default = if t.scheme == "https" { 443 } else { 80 };
            let port_ok = match port.as_deref() {
                None => t.port == default,
                Some("*") => true,
                Some(p) => p.parse::<u16>() == Ok(t.port),
            };
            scheme_ok && host_ok && port_ok
        });
        if allowed {
            Ok(())
        } else {
            Err(FetchError::NotAllowed(url.to_string()))
        }
    }

    /// GETs `url`, following redirects to allowed URLs only; the response
    /// is a 2xx whose body the caller reads.
    pub fn get(&self, http: &dyn HttpClient, url: &str) -> Result<OutResponse, FetchError> {
        let mut current = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            self.check(&current)?;
            let resp = send_idempotent(
                http,
                OutRequest {
                    method: http::Method::GET,
                    url: current.clone(),
                    headers: Vec::new(),
                    body: Vec::new(),
                },
            )
            .map_err(|_| FetchError::Failed(current.clone()))?;
            match resp.status {
                200..=299 => return Ok(resp),
                301 | 302 | 303 | 307 | 308 => {
                    let next = resp
                        .header("location")
                        .ok_or_else(|| FetchError::Failed(format!("{current} (redirect)")))?;
                    current = join(&current, next);
                }
                status => return Err(FetchError::Failed(format!("{current} (HTTP {status})"))),
            }
        }
        Err(FetchError::Failed(format!("{url} (too many redirects)")))
    }
}

/// `location` (absolute, or relative to `base`) as an absolute URL.
fn join(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if location.starts_with("//") {
        return format!("{scheme}:{location}");
    }
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let path = &rest[authority.len()..];
    let dir = path.split(['?', '#']).next().unwrap_or("");
    let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    format!("{scheme}://{authority}{dir}{location}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_never_reach_special_addresses() {
        let any = DownloadHosts::parse("http://*:*, https://*");
        assert!(any.check("https://example.com/x.img").is_ok());
        assert!(any.check("http://example.com:8080/x").is_ok());
        for bad in [
            "http://127.0.0.1:3150/",
            "http://[::1]/x",
            "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/x",
            "http://192.168.0.1/x",
            "http://localhost:5000/v3",
            "http://0.0.0.0/",
            "http://[::ffff:127.0.0.1]/",
            "http://100.64.0.1/",
        ] {
            assert!(
                matches!(any.check(bad), Err(FetchError::NotAllowed(_))),
                "{bad}"
            );
        }
        assert!(matches!(any.check("ftp://x/"), Err(FetchError::BadUrl(_))));
        assert!(matches!(
            any.check("http://user@127.0.0.1/"),
            Err(FetchError::BadUrl(_))
        ));
    }

    #[test]
    fn a_named_host_is_allowed_with_its_port_only() {
        let one = DownloadHosts::parse("http://127.0.0.1:3150");
        assert!(one.check("http://127.0.0.1:3150/image").is_ok());
        assert!(one.check("http://127.0.0.1:9000/bucket").is_err());
        assert!(one.check("https://127.0.0.1:3150/image").is_err());
        let sub = DownloadHosts::parse("https://*.example.com");
        assert!(sub.check("https://cdn.example.com/a").is_ok());
        assert!(sub.check("https://example.com.evil/a").is_err());
        assert!(sub.check("https://cdn.example.com:8443/a").is_err());
    }

    #[test]
    fn redirect_targets_are_resolved() {
        assert_eq!(join("http://a:1/x/y.img", "z.img"), "http://a:1/x/z.img");
        assert_eq!(join("http://a:1/x/y", "/b"), "http://a:1/b");
        assert_eq!(join("http://a:1/x", "https://c/d"), "https://c/d");
        assert_eq!(join("https://a/x", "//c/d"), "https://c/d");
    }
}
