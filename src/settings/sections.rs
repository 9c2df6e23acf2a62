//! The typed sections of the configuration, each read from the variables
//! listed in [`super::Var`].

use super::{flag, list, number, parse_bool, parse_size, value, ConfigError, Var};
use crate::auth::keystone::KeystoneSettings;
use crate::data::blob::s3::S3Settings;
use crate::data::blob::sigv4::Credentials;
use crate::data::remote::DownloadHosts;
use crate::data::stores::StoreId;
use crate::ports::Variables;

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthStrategy {
    /// Trust identity headers; loopback clients only unless opened. Local use.
    NoAuth,
    /// Validate `X-Auth-Token` against Keystone.
    Keystone(KeystoneSettings),
}

/// Identity settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthSettings {
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
    /// Reads `auth_strategy`, the `keystone_*` and the `noauth_*` variables;
    /// an unknown strategy is a configuration error.
    pub fn load(vars: &dyn Variables) -> Result<Self, ConfigError> {
        let strategy = match value(vars, Var::AuthStrategy).as_str() {
            "noauth" => AuthStrategy::NoAuth,
            "keystone" => AuthStrategy::Keystone(keystone(vars)),
            other => {
                return Err(ConfigError(format!(
                    "unsupported auth_strategy '{other}' (keystone or noauth)"
                )))
            }
        };
        Ok(AuthSettings {
            strategy,
            default_project_id: value(vars, Var::NoauthProjectId),
            default_user_id: value(vars, Var::NoauthUserId),
            default_roles: list(vars, Var::NoauthRoles),
            allow_remote: flag(vars, Var::NoauthAllowRemote),
        })
    }
}

/// Where Keystone is and how the service authenticates to it.
fn keystone(vars: &dyn Variables) -> KeystoneSettings {
    KeystoneSettings {
        url: value(vars, Var::KeystoneUrl)
            .trim_end_matches('/')
            .to_string(),
        api_path: value(vars, Var::KeystoneApiPath)
            .trim_end_matches('/')
            .to_string(),
        username: value(vars, Var::KeystoneUsername),
        // A password may begin or end with spaces: read it untrimmed.
        password: vars.get(Var::KeystonePassword.name()).unwrap_or_default(),
        project: value(vars, Var::KeystoneProject),
        user_domain_id: value(vars, Var::KeystoneUserDomainId),
        project_domain_id: value(vars, Var::KeystoneProjectDomainId),
        cache_ttl: number(vars, Var::TokenCacheTtl).unwrap_or(300),
    }
}

/// Limits of image lists and per-image quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ImageLimits {
    /// Page size when the client gives no `limit` (Glance's `limit_param_default`).
    pub limit_param_default: u32,
    /// Largest page size (`api_limit_max`).
    pub api_limit_max: u32,
    /// Custom properties per image (`image_property_quota`; negative = unlimited).
    pub property_quota: i64,
    /// Tags per image (`image_tag_quota`; negative = unlimited).
    pub tag_quota: i64,
    /// Members per image (`image_member_quota`; negative = unlimited).
    pub member_quota: i64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            limit_param_default: 25,
            api_limit_max: 1000,
            property_quota: 128,
            tag_quota: 128,
            member_quota: 128,
        }
    }
}

impl ImageLimits {
    /// Reads the limits, falling back to Glance's defaults for unusable values
    /// (page sizes below 1, text), as Glance's option parsing would refuse them.
    pub fn load(vars: &dyn Variables) -> Result<Self, ConfigError> {
        let d = ImageLimits::default();
        let num = |var: Var| number::<i64>(vars, var).ok();
        let api_limit_max = num(Var::ApiLimitMax)
            .filter(|v| *v >= 1)
            .map_or(d.api_limit_max, |v| v.min(u32::MAX as i64) as u32);
        Ok(ImageLimits {
            limit_param_default: num(Var::LimitParamDefault)
                .filter(|v| *v >= 1)
                .map_or(d.limit_param_default, |v| {
                    v.min(api_limit_max as i64) as u32
                }),
            api_limit_max,
            property_quota: num(Var::ImagePropertyQuota).unwrap_or(d.property_quota),
            tag_quota: num(Var::ImageTagQuota).unwrap_or(d.tag_quota),
            member_quota: num(Var::ImageMemberQuota).unwrap_or(d.member_quota),
        })
    }
}

/// A configured store, as `/v2/info/stores` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreInfo {
    /// Store id.
    pub id: StoreId,
    /// Human description.
    pub description: &'static str,
    /// Whether the store only serves existing data.
    pub read_only: bool,
}

/// Data-plane settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreSettings {
    /// Enabled stores, in order (`stores` variable, e.g. `kv,s3`).
    pub enabled: Vec<StoreInfo>,
    /// Where uploads go unless the client picks a store.
    pub default: StoreId,
    /// Chunk size of the `kv` store.
    pub kv_chunk_size: usize,
    /// S3 settings, when `s3` is enabled.
    pub s3: Option<S3Settings>,
    /// Largest image accepted, bytes (`image_size_cap`).
    pub image_size_cap: u64,
    /// Total bytes per owner, if limited (`user_storage_quota`).
    pub user_storage_quota: Option<u64>,
    /// Enabled import methods.
    pub import_methods: Vec<String>,
    /// Seconds work on data may go without progress (`stale_upload_seconds`).
    pub stale_seconds: i64,
    /// Where web-download and http locations may fetch from.
    pub download_hosts: DownloadHosts,
    /// The secure hash computed over image data (`hashing_algorithm`).
    pub hash: crate::data::receive::HashAlgo,
}

impl StoreSettings {
    /// Reads the settings; an unusable configuration says why.
    pub fn load(vars: &dyn Variables) -> Result<Self, ConfigError> {
        let mut enabled = Vec::new();
        for name in list(vars, Var::Stores) {
            let id = StoreId::parse(&name).ok_or_else(|| {
                ConfigError(format!(
                    "unknown store '{name}' in `stores` (kv, s3 or http)"
                ))
            })?;
            enabled.push(StoreInfo {
                id,
                description: id.description(),
                read_only: id.read_only(),
            });
        }
        let default_name = value(vars, Var::DefaultStore);
        let default = StoreId::parse(&default_name)
            .filter(|d| enabled.iter().any(|s| s.id == *d && !s.read_only))
            .ok_or_else(|| {
                ConfigError(format!(
                    "default_store '{default_name}' is not a writable enabled store"
                ))
            })?;
        let hash_name = value(vars, Var::HashingAlgorithm);
        let hash = crate::data::receive::HashAlgo::parse(&hash_name).ok_or_else(|| {
            ConfigError(format!(
                "hashing_algorithm '{hash_name}' is not offered (sha256, sha384, sha512)"
            ))
        })?;
        let s3 = enabled
            .iter()
            .any(|s| s.id == StoreId::S3)
            .then(|| s3(vars));
        Ok(StoreSettings {
            enabled,
            default,
            kv_chunk_size: number::<usize>(vars, Var::KvChunkSize)
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or(crate::data::blob::kv::DEFAULT_CHUNK_SIZE),
            s3,
            image_size_cap: number(vars, Var::ImageSizeCap).unwrap_or(1 << 40),
            user_storage_quota: parse_size(&value(vars, Var::UserStorageQuota)).filter(|n| *n > 0),
            import_methods: list(vars, Var::ImportMethods),
            stale_seconds: number::<i64>(vars, Var::StaleUploadSeconds)
                .unwrap_or(600)
                .max(1),
            download_hosts: DownloadHosts::parse(&value(vars, Var::DownloadHosts)),
            hash,
        })
    }

    /// More than one store: Glance's multi-store mode (`stores` field,
    /// `/v2/info/stores`, `OpenStack-image-store-ids`).
    pub fn multi_store(&self) -> bool {
        self.enabled.len() > 1
    }

    /// Whether `id` is an enabled store.
    pub fn has(&self, id: StoreId) -> bool {
        self.enabled.iter().any(|s| s.id == id)
    }

    /// Whether `id` is an enabled store that accepts new data.
    pub fn writable(&self, id: StoreId) -> bool {
        self.enabled.iter().any(|s| s.id == id && !s.read_only)
    }
}

/// The image cache and edge site mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheSettings {
    /// Most bytes the cache holds; `None`: no cache (`image_cache_max_size` 0).
    pub max_size: Option<u64>,
    /// The central Glance's origin, without a trailing `/` (`upstream_glance_url`).
    pub upstream: Option<String>,
    /// Seconds an upstream image's metadata is trusted (`upstream_ttl`).
    pub upstream_ttl: i64,
    /// Seconds work on data may go without progress (`stale_upload_seconds`).
    pub stale_seconds: i64,
}

impl CacheSettings {
    /// Reads the settings; an unusable size or URL says why.
    pub fn load(vars: &dyn Variables) -> Result<Self, ConfigError> {
        let text = value(vars, Var::ImageCacheMaxSize);
        let max_size = parse_size(&text).ok_or_else(|| {
            ConfigError(format!(
                "image_cache_max_size must be a size (e.g. 10GB), not '{text}'"
            ))
        })?;
        let upstream = value(vars, Var::UpstreamGlanceUrl);
        let upstream = if upstream.is_empty() {
            None
        } else if upstream.starts_with("http://") || upstream.starts_with("https://") {
            Some(upstream.trim_end_matches('/').to_string())
        } else {
            return Err(ConfigError(format!(
                "upstream_glance_url must be an http(s) origin, not '{upstream}'"
            )));
        };
        Ok(CacheSettings {
            max_size: Some(max_size).filter(|n| *n > 0),
            upstream,
            upstream_ttl: number::<i64>(vars, Var::UpstreamTtl)?.max(0),
            stale_seconds: number::<i64>(vars, Var::StaleUploadSeconds)
                .unwrap_or(600)
                .max(1),
        })
    }

    /// Whether the image cache is on.
    pub fn enabled(&self) -> bool {
        self.max_size.is_some()
    }
}

/// The S3 store's settings.
fn s3(vars: &dyn Variables) -> S3Settings {
    S3Settings {
        endpoint: value(vars, Var::S3Endpoint),
        bucket: value(vars, Var::S3Bucket),
        credentials: Credentials {
            access_key: value(vars, Var::S3AccessKey),
            secret_key: value(vars, Var::S3SecretKey),
            region: value(vars, Var::S3Region),
        },
        path_style: parse_bool(Some(&value(vars, Var::S3PathStyle))),
        part_size: number(vars, Var::S3PartSize).unwrap_or(16 << 20),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::fixed_vars as vars;

    #[test]
    fn limits_default_to_glance_values() {
        assert_eq!(
            ImageLimits::load(&vars(&[])).unwrap(),
            ImageLimits::default()
        );
    }

    #[test]
    fn limits_are_read_and_sanitised() {
        let l = ImageLimits::load(&vars(&[
            ("api_limit_max", "10"),
            ("limit_param_default", "50"),
        ]))
        .unwrap();
        assert_eq!(l.api_limit_max, 10);
        assert_eq!(l.limit_param_default, 10);
        let l = ImageLimits::load(&vars(&[("api_limit_max", "zero")])).unwrap();
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

    #[test]
    fn defaults_are_single_store_kv() {
        let s = StoreSettings::load(&vars(&[])).unwrap();
        assert_eq!(s.default, StoreId::Kv);
        assert!(!s.multi_store());
        assert_eq!(s.kv_chunk_size, crate::data::blob::kv::DEFAULT_CHUNK_SIZE);
        assert!(s.kv_chunk_size <= 1_000_000);
        assert_eq!(s.image_size_cap, 1 << 40);
        assert_eq!(
            s.import_methods,
            vec!["glance-direct", "web-download", "copy-image"]
        );
    }

    #[test]
    fn multi_store_needs_s3_settings() {
        // The S3 endpoint and bucket have defaults (spin.toml's), so enabling
        // s3 alone is a usable configuration aimed at a local S3 server.
        let s = StoreSettings::load(&vars(&[("stores", "kv,s3")])).unwrap();
        assert_eq!(s.s3.unwrap().endpoint, "http://127.0.0.1:9000");
        let s = StoreSettings::load(&vars(&[
            ("stores", "kv,s3"),
            ("s3_endpoint", "http://127.0.0.1:9000"),
            ("s3_bucket", "b"),
        ]))
        .unwrap();
        assert!(s.multi_store());
        assert!(s.s3.unwrap().path_style);
        assert!(StoreSettings::load(&vars(&[("stores", "kv,floppy")])).is_err());
        assert!(
            StoreSettings::load(&vars(&[("default_store", "http"), ("stores", "kv,http")]))
                .is_err()
        );
    }
}
