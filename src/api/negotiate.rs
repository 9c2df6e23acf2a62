//! Version negotiation, as Glance's `VersionNegotiationFilter` does it before
//! routing: `/v2.N/...` for any v2 version the version document serves is
//! `/v2/...`, and `Accept: application/vnd.openstack.images-v2.N` selects
//! version N for a path without a version prefix (`GET /images` →
//! `/v2/images`); an Accept naming a version not served gets the version
//! choices (300).
//!
//! Spin routes on the path alone and has no patterns inside a segment, so a
//! `/v2.N/...` or prefix-less path reaches the catch-all route (`/...`),
//! which the images component owns: it holds every grant the members and
//! discovery services need, so after rewriting it serves the request with
//! whichever service `spin.toml` routes the `/v2/...` path to ([`owner`]).

use crate::api::ApiRequest;
use crate::ports::Variables;
use crate::settings::{self, Var};

/// The media type prefix of Accept-header versioning.
const VND: &str = "application/vnd.openstack.images-";

/// What negotiation made of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Negotiated {
    /// Route the request as it is.
    Unchanged,
    /// Route it with this path instead.
    Path(String),
    /// The version asked for is not served: answer the version choices (300).
    Choices,
}

/// Which service `spin.toml` routes a path to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// `/v2/images/...` (but members), `/v2/info`, `/v2/stores`, `/v2/cache`,
    /// `/v2/tasks`, `/v1/images/...` (but members).
    Images,
    /// `/v2/images/{id}/members/...`, `/v1/images/{id}/members/...`, `/v1/shared-images/...`.
    Members,
    /// Everything else: schemas, versions, the health check, unknown paths.
    Discovery,
}

/// The v2 versions a deployment accepts in URLs and Accept headers (Glance's
/// `_get_allowed_versions`): those its version document lists, and `v2`.
pub(crate) fn accepted(version: &str, multi_store: bool, cache: bool) -> bool {
    match version {
        "v2" | "v2.0" | "v2.1" | "v2.2" | "v2.3" | "v2.4" | "v2.5" | "v2.6" | "v2.7" | "v2.9"
        | "v2.15" | "v2.17" => true,
        "v2.14" | "v2.16" | "v2.18" => cache,
        "v2.8" | "v2.10" | "v2.11" | "v2.12" | "v2.13" => multi_store,
        _ => false,
    }
}

/// Whether the deployment has several stores and an image cache (what the
/// version document and negotiation depend on).
pub(crate) fn deployment(vars: &dyn Variables) -> (bool, bool) {
    let multi_store = settings::list(vars, Var::Stores).len() > 1;
    let cache = settings::value(vars, Var::ImageCacheMaxSize);
    let cache = settings::parse_size(&cache).is_some_and(|n| n > 0);
    (multi_store, cache)
}

/// Negotiates `req`'s version (Glance's order: `/versions` first, then the
/// Accept header, then the URL).
pub(crate) fn negotiate(req: &ApiRequest, multi_store: bool, cache: bool) -> Negotiated {
    let trimmed = req.path.trim_start_matches('/');
    let (first, rest) = match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    };
    if first == "versions" {
        return Negotiated::Unchanged;
    }
    if let Some(version) = req.header("accept").and_then(|a| a.strip_prefix(VND)) {
        return if accepted(version, multi_store, cache) {
            Negotiated::Path(format!("/v2{}", req.path))
        } else {
            Negotiated::Choices
        };
    }
    if first != "v2" && first.starts_with("v2.") && accepted(first, multi_store, cache) {
        return Negotiated::Path(format!("/v2{rest}"));
    }
    Negotiated::Unchanged
}

/// The service `spin.toml` routes `path` to.
pub(crate) fn owner(path: &str) -> Owner {
    let s: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match s.as_slice() {
        ["v2" | "v1", "images", id, "members", ..] if !id.is_empty() => Owner::Members,
        ["v1", "shared-images", ..] => Owner::Members,
        ["v2", "images" | "info" | "stores" | "cache" | "tasks" | "metadefs", ..] => Owner::Images,
        ["v1", "images", ..] => Owner::Images,
        _ => Owner::Discovery,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Method};

    fn req(path: &str, accept: Option<&str>) -> ApiRequest<'static> {
        let mut h = HeaderMap::new();
        if let Some(a) = accept {
            h.insert("accept", a.parse().unwrap());
        }
        ApiRequest::new(
            Method::GET,
            path,
            h,
            "http://x",
            None,
            Box::new(std::io::empty()),
        )
    }

    #[test]
    fn url_versions_the_deployment_serves_are_v2() {
        let n = |p: &str, m: bool, c: bool| negotiate(&req(p, None), m, c);
        assert_eq!(
            n("/v2.1/images", false, false),
            Negotiated::Path("/v2/images".into())
        );
        assert_eq!(
            n("/v2.17/images/x/members", false, false),
            Negotiated::Path("/v2/images/x/members".into())
        );
        assert_eq!(n("/v2.1", false, false), Negotiated::Path("/v2".into()));
        assert_eq!(n("/v2/images", false, false), Negotiated::Unchanged);
        // Only with several stores / a cache, as the version document.
        assert_eq!(n("/v2.12/images", false, false), Negotiated::Unchanged);
        assert_eq!(
            n("/v2.12/images", true, false),
            Negotiated::Path("/v2/images".into())
        );
        assert_eq!(n("/v2.18/cache", false, false), Negotiated::Unchanged);
        assert_eq!(
            n("/v2.18/cache", false, true),
            Negotiated::Path("/v2/cache".into())
        );
        assert_eq!(n("/v2.19/images", true, true), Negotiated::Unchanged);
        assert_eq!(n("/v2.01/images", true, true), Negotiated::Unchanged);
    }

    #[test]
    fn accept_versions_prefix_the_path() {
        let n = |p: &str, a: &str| negotiate(&req(p, Some(a)), false, false);
        assert_eq!(
            n("/images", "application/vnd.openstack.images-v2.1"),
            Negotiated::Path("/v2/images".into())
        );
        assert_eq!(
            n("/images", "application/vnd.openstack.images-v2.12"),
            Negotiated::Choices
        );
        assert_eq!(
            n("/images", "application/vnd.openstack.images-v3"),
            Negotiated::Choices
        );
        assert_eq!(
            n("/versions", "application/vnd.openstack.images-v3"),
            Negotiated::Unchanged
        );
        assert_eq!(n("/v2/images", "application/json"), Negotiated::Unchanged);
    }

    #[test]
    fn owners_follow_spin_toml() {
        assert_eq!(owner("/v2/images"), Owner::Images);
        assert_eq!(owner("/v2/images/a/file"), Owner::Images);
        assert_eq!(owner("/v2/images/a/members"), Owner::Members);
        assert_eq!(owner("/v2/images/a/members/b"), Owner::Members);
        assert_eq!(owner("/v2/tasks/x"), Owner::Images);
        assert_eq!(owner("/v2/metadefs/namespaces"), Owner::Images);
        assert_eq!(owner("/v1/images/a/members"), Owner::Members);
        assert_eq!(owner("/v1/shared-images/p"), Owner::Members);
        assert_eq!(owner("/v2/schemas/image"), Owner::Discovery);
        assert_eq!(owner("/v2/nothing"), Owner::Discovery);
        assert_eq!(owner("/"), Owner::Discovery);
    }
}
