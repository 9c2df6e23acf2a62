//! Service settings, read from the host's variables (Spin variables in a component).

use crate::error::{ApiError, ApiResult};
use crate::ports::Variables;

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStrategy {
    /// Trust identity headers; loopback clients only unless opened. Local use.
    NoAuth,
    /// Validate `X-Auth-Token` against Keystone.
    Keystone(crate::auth::keystone::KeystoneSettings),
}

/// Identity settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// Selected strategy.
    pub strategy: AuthStrategy,
    /// noauth: project used when a request names none.
    pub default_project_id: String,
    /// noauth: user used when a request names none.
    pub default_user_id: String,
    /// noauth: roles used when a request names none.
    pub default_roles: Vec<String>,
    /// noauth: whether non-loopback clients are answered.
    pub allow_remote: bool,
}

impl AuthSettings {
    /// Reads `auth_strategy` and the `noauth_*` variables; an unknown strategy is
    /// a configuration error, answered as 500 so it is noticed.
    pub fn load(vars: &dyn Variables) -> ApiResult<Self> {
        let strategy = match vars.get("auth_strategy").as_deref().map(str::trim) {
            None | Some("") | Some("noauth") => AuthStrategy::NoAuth,
            Some("keystone") => {
                AuthStrategy::Keystone(crate::auth::keystone::KeystoneSettings::load(vars))
            }
            Some(other) => {
                return Err(ApiError::internal(format!(
                    "unsupported auth_strategy '{other}'"
                )))
            }
        };
        let text = |name: &str, default: &str| {
            vars.get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        Ok(AuthSettings {
            strategy,
            default_project_id: text("noauth_project_id", "admin"),
            default_user_id: text("noauth_user_id", "admin"),
            default_roles: text("noauth_roles", "admin,member,reader")
                .split(',')
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect(),
            allow_remote: parse_bool(vars.get("noauth_allow_remote").as_deref()),
        })
    }
}

/// Limits of image lists and per-image quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Page size when the client gives no `limit` (Glance's `limit_param_default`).
    pub limit_param_default: u32,
    /// Largest page size (`api_limit_max`).
    pub api_limit_max: u32,
    /// Custom properties per image (`image_property_quota`; negative = unlimited).
    pub property_quota: i64,
    /// Tags per image (`image_tag_quota`; negative = unlimited).
    pub tag_quota: i64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            limit_param_default: 25,
            api_limit_max: 1000,
            property_quota: 128,
            tag_quota: 128,
        }
    }
}

impl ImageLimits {
    /// Reads the limits, falling back to Glance's defaults for unset or unparsable values.
    pub fn load(vars: &dyn Variables) -> Self {
        let d = ImageLimits::default();
        let num = |name: &str| vars.get(name).and_then(|v| v.trim().parse::<i64>().ok());
        let api_limit_max = num("api_limit_max")
            .filter(|v| *v >= 1)
            .map_or(d.api_limit_max, |v| v.min(u32::MAX as i64) as u32);
        ImageLimits {
            limit_param_default: num("limit_param_default")
                .filter(|v| *v >= 1)
                .map_or(d.limit_param_default, |v| {
                    v.min(api_limit_max as i64) as u32
                }),
            api_limit_max,
            property_quota: num("image_property_quota").unwrap_or(d.property_quota),
            tag_quota: num("image_tag_quota").unwrap_or(d.tag_quota),
        }
    }
}

/// Reads a boolean variable: "true", "1", "yes" and "on" are true.
pub fn parse_bool(v: Option<&str>) -> bool {
    matches!(
        v.map(|s| s.trim().to_ascii_lowercase()).as_deref(),
        Some("true" | "1" | "yes" | "on")
    )
}

/// Fixed variables for unit tests.
#[cfg(test)]
pub(crate) fn fixed_vars(pairs: &'static [(&'static str, &'static str)]) -> impl Variables {
    move |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixed_vars as vars;

    #[test]
    fn limits_default_to_glance_values() {
        assert_eq!(ImageLimits::load(&vars(&[])), ImageLimits::default());
    }

    #[test]
    fn limits_are_read_and_sanitised() {
        let l = ImageLimits::load(&vars(&[
            ("api_limit_max", "10"),
            ("limit_param_default", "50"),
        ]));
        assert_eq!(l.api_limit_max, 10);
        assert_eq!(l.limit_param_default, 10);
        let l = ImageLimits::load(&vars(&[("api_limit_max", "zero")]));
        assert_eq!(l.api_limit_max, 1000);
    }

    #[test]
    fn auth_defaults_to_noauth_admin() {
        let a = AuthSettings::load(&vars(&[])).unwrap();
        assert_eq!(a.strategy, AuthStrategy::NoAuth);
        assert_eq!(a.default_roles, vec!["admin", "member", "reader"]);
        assert!(!a.allow_remote);
        assert!(AuthSettings::load(&vars(&[("auth_strategy", "magic")])).is_err());
    }
}
