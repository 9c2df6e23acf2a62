//! Outbound HTTP: `allowed_outbound_hosts` and the wasi:http `send_request` hook.
//!
//! Mirrors spinframework/spin crates/outbound-networking-config/src/allowed_hosts.rs (the
//! entry syntax and matching) and crates/factor-outbound-http/src/wasi.rs (the checks made
//! before a request is sent):
//! - an entry is `scheme://host[:port]`; `*` may stand for the scheme, the host or the
//!   port; `*.example.com` allows subdomains; a host may be a CIDR block (`10.0.0.0/8`);
//!   `self` (or `self.alt`) allows requests to the app itself; a missing port means the
//!   scheme's well-known port (80, 443, 5432, 3306, 6379, 1883); `a..b` is a port range;
//! - entries may contain `{{ variable }}` templates over application variables; an entry
//!   that resolves to `""`, `"http://"` or `"https://"` is skipped (an optional endpoint);
//! - a request to a host no entry allows fails with `ErrorCode::HttpRequestDenied`;
//! - a request to `self.alt` (or without an authority) goes to this host's own listener
//!   and needs a `self` or `*` host entry.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{bail, ensure, Context as _, Result};
use http::uri::{Authority, Scheme};
use url::Host;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use crate::template::Template;
use crate::variables::AppVariables;

/// A component's parsed `allowed_outbound_hosts`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    hosts: Vec<AllowedHost>,
}

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    original: String,
    scheme: Option<String>,
    host: HostConfig,
    port: PortConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostConfig {
    Any,
    AnySubdomain(String),
    ToSelf,
    Literal(Host),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortConfig {
    Any,
    Port(u16),
    Range(u16, u16),
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

const FORMAT_HELP: &str =
    "Hosts must be in the form <scheme>://<host>[:<port>], with '*' wildcards allowed for each.";

impl AllowedHost {
    /// Parses one entry (already template-resolved).
    pub fn parse(entry: &str) -> Result<Self> {
        let url = entry.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            match url {
                "*" | ":" | "" | "?" => bail!(
                    "{url:?} is not an allowed outbound host format.\n{FORMAT_HELP}\nIf you intended to allow all outbound networking, you can use '*://*:*' - this will obviate all network sandboxing."
                ),
                _ => bail!("{url:?} does not contain a scheme (e.g., 'http://' or '*://')"),
            }
        };
        let (host, port) = match rest.rsplit_once(':') {
            None => (rest, ""),
            Some((h, "")) => (h, ""),
            Some((h, tail)) => {
                if HostConfig::parse(rest).is_ok() {
                    (rest, "")
                } else {
                    let port = match tail.split_once('/') {
                        Some((port, path)) => {
                            ensure!(path.is_empty(), "{url:?} has a path but is not allowed to");
                            port
                        }
                        None => tail,
                    };
                    (h, port)
                }
            }
        };
        let port = PortConfig::parse(port, scheme)
            .with_context(|| format!("Invalid allowed host port {port:?}"))?;
        let scheme = if scheme == "*" {
            None
        } else {
            ensure!(
                !scheme.starts_with('{'),
                "Invalid allowed host scheme {scheme:?}: scheme lists are not supported"
            );
            ensure!(
                scheme.chars().all(char::is_alphabetic),
                "Invalid allowed host scheme {scheme:?}: only alphabetic characters are allowed"
            );
            Some(scheme.to_string())
        };
        let host =
            HostConfig::parse(host).with_context(|| format!("Invalid allowed host {host:?}"))?;
        Ok(Self {
            original: entry.to_string(),
            scheme,
            host,
            port,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.host.allows(host)
            && self.port.allows(port, scheme)
    }

    fn allows_relative(&self, schemes: &[&str]) -> bool {
        schemes
            .iter()
            .any(|s| self.scheme.as_deref().is_none_or(|x| x == *s))
            && matches!(self.host, HostConfig::Any | HostConfig::ToSelf)
    }
}

impl HostConfig {
    fn parse(host: &str) -> Result<Self> {
        let host = host.trim();
        if host == "*" {
            return Ok(Self::Any);
        }
        if host == "self" || host == "self.alt" {
            return Ok(Self::ToSelf);
        }
        if host.starts_with('{') {
            bail!("host lists are not yet supported");
        }
        if let Some((ip, bits)) = host.split_once('/') {
            if let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                ensure!(bits <= max, "invalid CIDR prefix length {bits}");
                return Ok(Self::Cidr(truncate(ip, bits), bits));
            }
        }
        let host = host.strip_suffix('/').unwrap_or(host);
        ensure!(!host.contains('/'), "must not include a path");
        if let Some(domain) = host.strip_prefix("*.") {
            ensure!(
                !domain.contains('*'),
                "wildcards are allowed only as prefixes"
            );
            let Host::Domain(domain) = Host::parse(domain)
                .with_context(|| format!("invalid wildcard host \"*.{domain}\""))?
            else {
                bail!("wildcard suffix must be a domain");
            };
            return Ok(Self::AnySubdomain(format!(".{domain}")));
        }
        ensure!(
            !host.contains('*'),
            "wildcards are allowed only as subdomains"
        );
        Ok(Self::Literal(Host::parse(host)?))
    }

    fn allows(&self, host: &str) -> bool {
        let Ok(host) = Host::parse(host) else {
            return false;
        };
        match (self, host) {
            (Self::Any, _) => true,
            (Self::AnySubdomain(suffix), Host::Domain(d)) => d.ends_with(suffix.as_str()),
            (Self::Literal(l), h) => *l == h,
            (Self::Cidr(net, bits), Host::Ipv4(ip)) => {
                net.is_ipv4() && truncate(IpAddr::V4(ip), *bits) == *net
            }
            (Self::Cidr(net, bits), Host::Ipv6(ip)) => {
                net.is_ipv6() && truncate(IpAddr::V6(ip), *bits) == *net
            }
            _ => false,
        }
    }
}

fn truncate(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

impl PortConfig {
    fn parse(port: &str, scheme: &str) -> Result<Self> {
        if port.is_empty() {
            return well_known_port(scheme).map(Self::Port).with_context(|| {
                format!("no port was provided and the scheme {scheme:?} does not have a known default port number")
            });
        }
        if port == "*" {
            return Ok(Self::Any);
        }
        ensure!(!port.starts_with('{'), "port lists are not yet supported");
        if let Some((start, end)) = port.split_once("..") {
            let start = start
                .parse()
                .with_context(|| format!("port range {port:?} contains non-number"))?;
            let end = end
                .parse()
                .with_context(|| format!("port range {port:?} contains non-number"))?;
            return Ok(Self::Range(start, end));
        }
        Ok(Self::Port(port.parse().with_context(|| {
            format!("port {port:?} is not a number")
        })?))
    }

    fn allows(&self, port: Option<u16>, scheme: &str) -> bool {
        let Some(port) = port.or_else(|| well_known_port(scheme)) else {
            return matches!(self, Self::Any);
        };
        match self {
            Self::Any => true,
            Self::Port(p) => *p == port,
            Self::Range(a, b) => (*a..*b).contains(&port),
        }
    }
}

impl AllowedHosts {
    /// Parses a component's entries, resolving templates with the application variables.
    pub fn parse(entries: &[String], vars: &AppVariables) -> Result<Self> {
        if entries.len() == 1 && entries[0] == "insecure:allow-all" {
            bail!("'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'");
        }
        let mut hosts = Vec::new();
        for entry in entries {
            let template = Template::parse(entry)?;
            if template.is_literal() {
                hosts.push(AllowedHost::parse(entry)?);
                continue;
            }
            let resolved = vars.render(&template)?;
            if resolved.is_empty() || resolved == "http://" || resolved == "https://" {
                continue;
            }
            hosts.push(AllowedHost::parse(&resolved).with_context(|| {
                format!("allowed_outbound_hosts entry {entry:?} resolves to invalid config {resolved:?}")
            })?);
        }
        Ok(Self { hosts })
    }

    /// Whether a request to `url` (absolute) is allowed.
    pub fn allows_url(&self, url: &str) -> bool {
        let Ok(parsed) = url::Url::parse(url) else {
            return false;
        };
        let Some(host) = parsed.host_str() else {
            return false;
        };
        self.hosts
            .iter()
            .any(|h| h.allows(parsed.scheme(), host, parsed.port()))
    }

    /// Spin's `check_url(url, scheme)` for non-HTTP outbound connections (Redis): `url`
    /// is parsed as is, or with `scheme://` put before it when it has no host; its user
    /// info is ignored. An unparsable URL is not allowed.
    pub fn allows_outbound_url(&self, url: &str, scheme: &str) -> bool {
        let parsed = match url::Url::parse(url) {
            Ok(u) if u.has_host() => Some(u),
            _ => url::Url::parse(&format!("{scheme}://{url}")).ok(),
        };
        let Some(parsed) = parsed else {
            return false;
        };
        let Some(host) = parsed.host_str() else {
            return false;
        };
        self.hosts
            .iter()
            .any(|h| h.allows(parsed.scheme(), host, parsed.port()))
    }

    /// Whether a request to the app itself is allowed.
    pub fn allows_self(&self) -> bool {
        self.hosts
            .iter()
            .any(|h| h.allows_relative(&["http", "https"]))
    }

    /// The entries as written (after template resolution).
    #[cfg(test)]
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(|h| h.original.as_str())
    }
}

/// Per-instance outbound HTTP policy: the `WasiHttpHooks` of every store.
pub struct OutboundHooks {
    allowed: Arc<AllowedHosts>,
    component_id: Arc<str>,
    /// `ip:port` of this host's listener, for requests to `self`.
    self_authority: Arc<str>,
}

impl OutboundHooks {
    /// Hooks for one instance of `component_id`.
    pub fn new(
        allowed: Arc<AllowedHosts>,
        component_id: Arc<str>,
        self_authority: Arc<str>,
    ) -> Self {
        Self {
            allowed,
            component_id,
            self_authority,
        }
    }
}

type SendFuture = Box<
    dyn std::future::Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        _ = fut;
        let is_self = request
            .uri()
            .authority()
            .is_none_or(|a| a.host().is_empty() || a.host() == "self.alt");
        let allowed = if is_self {
            self.allowed.allows_self()
        } else {
            self.allowed.allows_url(&request.uri().to_string())
        };
        if !allowed {
            let (scheme, authority) = (
                request.uri().scheme_str().unwrap_or("https").to_string(),
                request
                    .uri()
                    .authority()
                    .map_or("self".to_string(), |a| a.to_string()),
            );
            eprintln!(
                "A component tried to make an HTTP request to a non-allowed host '{scheme}://{authority}' (component `{}`). To allow it, add '{scheme}://{authority}' to the component's allowed_outbound_hosts.",
                self.component_id
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        if is_self {
            let Ok(authority) = self.self_authority.parse::<Authority>() else {
                return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestUriInvalid) });
            };
            let mut parts = request.uri().clone().into_parts();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = Some(authority);
            if parts.path_and_query.is_none() {
                parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
            }
            match http::Uri::from_parts(parts) {
                Ok(uri) => *request.uri_mut() = uri,
                Err(_) => {
                    return Box::new(async {
                        Err(wasmtime_wasi_http::Error::HttpRequestUriInvalid)
                    })
                }
            }
            if let Ok(v) = http::HeaderValue::from_str(&self.self_authority) {
                request.headers_mut().insert(http::header::HOST, v);
            }
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        AllowedHosts::parse(&entries, &AppVariables::default()).unwrap()
    }

    #[test]
    fn literal_hosts_and_default_ports() {
        let h = hosts(&["https://example.com", "http://127.0.0.1:9000"]);
        assert!(h.allows_url("https://example.com/path?q=1"));
        assert!(h.allows_url("https://example.com:443/"));
        assert!(!h.allows_url("https://example.com:8443/"));
        assert!(!h.allows_url("http://example.com/"));
        assert!(!h.allows_url("https://www.example.com/"));
        assert!(h.allows_url("http://127.0.0.1:9000/bucket"));
        assert!(!h.allows_url("http://127.0.0.1:9001/"));
        assert!(!h.allows_url("http://localhost:9000/"));
        assert!(!h.allows_self());
    }

    #[test]
    fn wildcards() {
        let h = hosts(&["http://*:*"]);
        assert!(h.allows_url("http://anything:1234/"));
        assert!(h.allows_url("http://[::1]:80/"));
        assert!(!h.allows_url("https://anything/"));
        assert!(h.allows_self());

        let h = hosts(&["*://localhost:*"]);
        assert!(h.allows_url("http://localhost:3000/"));
        assert!(h.allows_url("https://localhost/"));
        assert!(!h.allows_url("http://127.0.0.1:3000/"));

        let h = hosts(&["https://*.example.com"]);
        assert!(h.allows_url("https://a.example.com/"));
        assert!(h.allows_url("https://a.b.example.com/"));
        assert!(!h.allows_url("https://example.com/"));

        let h = hosts(&["https://*"]);
        assert!(h.allows_url("https://s3.amazonaws.com/x"));
        assert!(!h.allows_url("https://s3.amazonaws.com:8443/x"));
        assert!(!h.allows_url("http://s3.amazonaws.com/x"));
    }

    #[test]
    fn cidr_ranges_and_self() {
        let h = hosts(&["http://10.0.0.0/8:*", "http://self", "http://[::1]:8080"]);
        assert!(h.allows_url("http://10.1.2.3:5000/"));
        assert!(!h.allows_url("http://11.1.2.3:5000/"));
        assert!(h.allows_url("http://[::1]:8080/"));
        assert!(h.allows_self());
        let h = hosts(&["http://127.0.0.1:8000..8010"]);
        assert!(h.allows_url("http://127.0.0.1:8005/"));
        assert!(!h.allows_url("http://127.0.0.1:8010/"));
    }

    #[test]
    fn invalid_entries() {
        for bad in [
            "example.com",
            "*",
            "*://localhost",
            "http://exa*mple.com",
            "http://example.com/path",
            "ht-tp://example.com",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
        let e: Vec<String> = vec!["insecure:allow-all".into()];
        assert!(AllowedHosts::parse(&e, &AppVariables::default()).is_err());
    }

    #[test]
    fn templates_resolve_and_empty_is_skipped() {
        let text = r#"spin_manifest_version = 2
[application]
name = "t"
[variables]
endpoint = { default = "http://127.0.0.1:9000" }
optional = { default = "" }
"#;
        let app = crate::manifest::App::parse(text, "/a".into()).unwrap();
        struct None_;
        impl crate::variables::Provider for None_ {
            fn get(&self, _: &str) -> Result<Option<String>, String> {
                Ok(None)
            }
        }
        let vars = AppVariables::resolve(&app, &None_).unwrap();
        let entries = vec!["{{ endpoint }}".to_string(), "{{ optional }}".to_string()];
        let h = AllowedHosts::parse(&entries, &vars).unwrap();
        assert_eq!(h.entries().collect::<Vec<_>>(), ["http://127.0.0.1:9000"]);
        assert!(h.allows_url("http://127.0.0.1:9000/x"));
    }
}
