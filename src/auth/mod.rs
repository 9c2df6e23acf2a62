//! Who is asking: turns a request into a [`Caller`] according to the configured
//! authentication strategy, and what it may do ([`policy`]).

pub mod caller;
pub mod keystone;
pub mod policy;

use crate::api::ApiRequest;
use crate::auth::caller::Caller;
use crate::auth::keystone::KeystoneAuth;
use crate::error::{ApiError, ApiResult};
use crate::ports::Ports;
use crate::settings::{AuthSettings, AuthStrategy};

/// Reads the authentication settings from the host's variables and
/// authenticates `req` with them.
pub fn identify(ports: &Ports, req: &ApiRequest) -> ApiResult<Caller> {
    let settings = AuthSettings::load(ports.vars)?;
    match &settings.strategy {
        AuthStrategy::Keystone(ks) => {
            let cache = ports.kv.open(TOKEN_CACHE_LABEL)?;
            KeystoneAuth::new(ks, ports.http.clone(), cache)
                .authenticate(req.header("x-auth-token"))
        }
        AuthStrategy::NoAuth => noauth(req, &settings),
    }
}

/// The key-value store that caches validated tokens (Spin's default store).
pub const TOKEN_CACHE_LABEL: &str = "default";

/// noauth: the identity headers Keystone's middleware would set
/// (`X-Project-Id`/`X-Tenant-Id`, `X-User-Id`, `X-Roles`), else the configured
/// defaults; only loopback clients unless opened.
fn noauth(req: &ApiRequest, settings: &AuthSettings) -> ApiResult<Caller> {
    let loopback = req.client_ip.is_some_and(|ip| ip.is_loopback());
    if !loopback && !settings.allow_remote {
        return Err(ApiError::unauthorized(
            "This service runs without authentication (noauth) and only answers clients \
             on the loopback interface.",
        ));
    }
    let first = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| req.header(n))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let project = first(&["x-project-id", "x-tenant-id", "x-tenant"])
        .unwrap_or_else(|| settings.default_project_id.clone());
    let user = first(&["x-user-id", "x-user"]).unwrap_or_else(|| settings.default_user_id.clone());
    // A roles header that is present but blank means no roles: only a
    // request without one gets the configured defaults.
    let sent = ["x-roles", "x-role"].iter().find_map(|n| req.header(n));
    let roles: Vec<String> = match sent {
        Some(r) => r
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => settings.default_roles.clone(),
    };
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    Ok(Caller::new(Some(project), Some(user), &roles))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Method, StatusCode};

    fn settings(allow_remote: bool) -> AuthSettings {
        AuthSettings {
            strategy: AuthStrategy::NoAuth,
            default_project_id: "dflt".into(),
            default_user_id: "u".into(),
            default_roles: vec!["admin".into()],
            allow_remote,
        }
    }

    fn req(ip: &str, headers: &[(&'static str, &str)]) -> ApiRequest<'static> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        ApiRequest::new(
            Method::GET,
            "/",
            h,
            "http://x",
            ip.parse().ok(),
            Box::new(&b""[..]),
        )
    }

    #[test]
    fn defaults_apply_without_headers() {
        let c = noauth(&req("127.0.0.1", &[]), &settings(false)).unwrap();
        assert_eq!(c.project_id.as_deref(), Some("dflt"));
        assert!(c.is_admin());
    }

    #[test]
    fn headers_name_the_caller() {
        let c = noauth(
            &req("::1", &[("x-tenant-id", "p7"), ("x-roles", "Member")]),
            &settings(false),
        )
        .unwrap();
        assert_eq!(c.project_id.as_deref(), Some("p7"));
        assert_eq!(c.roles, vec!["member", "reader"]);
    }

    #[test]
    fn a_blank_roles_header_means_no_roles() {
        let c = noauth(&req("127.0.0.1", &[("x-roles", " ")]), &settings(false)).unwrap();
        assert!(c.roles.is_empty());
        assert!(!c.is_admin());
    }

    #[test]
    fn remote_clients_are_refused_unless_opened() {
        let err = noauth(&req("10.0.0.1", &[]), &settings(false)).unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert!(noauth(&req("10.0.0.1", &[]), &settings(true)).is_ok());
        assert!(noauth(&req("not-an-ip", &[]), &settings(false)).is_err());
    }
}
