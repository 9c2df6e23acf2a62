//! Every variable the service reads, its default, and its parsing — in one
//! place, so the code and `spin.toml` cannot drift apart (a test compares
//! them).
//!
//! A host defines variables (Spin: `[variables]` in `spin.toml`, overridden
//! with `SPIN_VARIABLE_<NAME>`); an unset or blank variable takes the default
//! listed here, which is also the manifest's. The typed sections
//! ([`AuthSettings`], [`ImageLimits`], [`StoreSettings`], ...) are read from
//! them; a value the service cannot work with is a [`ConfigError`] that names
//! the variable. [`check`] reads every section, so a host can refuse to start
//! on a broken configuration instead of answering each request with a 500.

mod sections;

use std::fmt;

use crate::ports::Variables;

pub(crate) use sections::{AuthSettings, AuthStrategy, CacheSettings, ImageLimits, StoreSettings};

/// A configuration value the service cannot work with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

macro_rules! variables {
    ($( $(#[doc = $doc:literal])* $var:ident = $name:literal, $default:literal; )*) => {
        /// A variable the service reads.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Var {
            $( $(#[doc = $doc])* $var, )*
        }

        impl Var {
            /// Every variable, in `spin.toml` order (the manifest test walks it).
            #[cfg_attr(not(test), allow(dead_code))]
            pub(crate) const ALL: &'static [Var] = &[$(Var::$var),*];

            /// The variable's name (`SPIN_VARIABLE_<NAME>` upper-cased).
            pub(crate) fn name(self) -> &'static str {
                match self { $(Var::$var => $name,)* }
            }

            /// The default, as in `spin.toml`'s `[variables]`.
            pub(crate) fn default(self) -> &'static str {
                match self { $(Var::$var => $default,)* }
            }
        }
    };
}

variables! {
    /// `keystone` or `noauth`.
    AuthStrategy = "auth_strategy", "noauth";
    /// Keystone's origin (also an allowed outbound host).
    KeystoneUrl = "keystone_url", "http://127.0.0.1:5000";
    /// Keystone's API path below its origin.
    KeystoneApiPath = "keystone_api_path", "/v3";
    /// The service user that validates tokens.
    KeystoneUsername = "keystone_username", "glance";
    /// Its password.
    KeystonePassword = "keystone_password", "";
    /// Its project.
    KeystoneProject = "keystone_project", "service";
    /// Its user's domain.
    KeystoneUserDomainId = "keystone_user_domain_id", "default";
    /// Its project's domain.
    KeystoneProjectDomainId = "keystone_project_domain_id", "default";
    /// Seconds a validated token is trusted.
    TokenCacheTtl = "token_cache_ttl", "300";
    /// JSON object of oslo.policy rules replacing Glance's defaults.
    PolicyOverrides = "policy_overrides", "";
    /// Members per image (negative: unlimited).
    ImageMemberQuota = "image_member_quota", "128";
    /// noauth: project of requests that name none.
    NoauthProjectId = "noauth_project_id", "admin";
    /// noauth: user of requests that name none.
    NoauthUserId = "noauth_user_id", "admin";
    /// noauth: roles of requests that name none.
    NoauthRoles = "noauth_roles", "admin,member,reader";
    /// noauth: whether non-loopback clients are answered.
    NoauthAllowRemote = "noauth_allow_remote", "false";
    /// Default page size of lists.
    LimitParamDefault = "limit_param_default", "25";
    /// Largest page size of lists.
    ApiLimitMax = "api_limit_max", "1000";
    /// Custom properties per image (negative: unlimited).
    ImagePropertyQuota = "image_property_quota", "128";
    /// Tags per image (negative: unlimited).
    ImageTagQuota = "image_tag_quota", "128";
    /// Base URL of the version document; empty: the request's own.
    PublicEndpoint = "public_endpoint", "";
    /// Enabled data stores, comma separated.
    Stores = "stores", "kv";
    /// Where uploads go unless the client picks a store.
    DefaultStore = "default_store", "kv";
    /// Bytes per key-value chunk.
    KvChunkSize = "kv_chunk_size", "1000000";
    /// The S3 API's origin.
    S3Endpoint = "s3_endpoint", "http://127.0.0.1:9000";
    /// The S3 bucket.
    S3Bucket = "s3_bucket", "glance-images";
    /// The S3 region.
    S3Region = "s3_region", "us-east-1";
    /// S3 access key.
    S3AccessKey = "s3_access_key", "";
    /// S3 secret key.
    S3SecretKey = "s3_secret_key", "";
    /// Path-style S3 addressing.
    S3PathStyle = "s3_path_style", "true";
    /// S3 multipart part size in bytes.
    S3PartSize = "s3_part_size", "16777216";
    /// Hosts web-download and http locations may fetch from.
    DownloadHosts = "download_hosts", "https://*";
    /// Largest image accepted, bytes.
    ImageSizeCap = "image_size_cap", "1099511627776";
    /// Total bytes per owner (Glance's size syntax; 0: unlimited).
    UserStorageQuota = "user_storage_quota", "0";
    /// Interoperable import methods offered.
    ImportMethods = "import_methods", "glance-direct,web-download,copy-image";
    /// Seconds an upload, stage or import may go without progress before it
    /// counts as abandoned (the image takes data again, its bytes are reclaimed).
    StaleUploadSeconds = "stale_upload_seconds", "600";
    /// Bytes the image cache may hold (Glance's size syntax; 0: no cache).
    ImageCacheMaxSize = "image_cache_max_size", "0";
    /// Edge site mode: the central Glance's origin (empty: off).
    UpstreamGlanceUrl = "upstream_glance_url", "";
    /// Seconds an upstream image's metadata is trusted before it is re-checked.
    UpstreamTtl = "upstream_ttl", "60";
    /// Property prefixes glance-download copies from the remote image.
    GlanceDownloadProperties = "glance_download_properties", "hw_,trait:,os_distro,os_secure_boot,os_type";
    /// Where notifications go: `noop`, `redis`, `webhook`, or `redis,webhook`.
    NotificationDriver = "notification_driver", "noop";
    /// The Redis server notifications are published to (an allowed outbound host).
    NotificationRedisUrl = "notification_redis_url", "redis://127.0.0.1:6379";
    /// The Redis channel (oslo.messaging's topic and priority).
    NotificationRedisChannel = "notification_redis_channel", "notifications.info";
    /// The URL CloudEvents are POSTed to.
    NotificationWebhookUrl = "notification_webhook_url", "http://127.0.0.1:9797/notifications";
    /// The webhook's origin, as the manifest grants it (must match the URL's).
    NotificationWebhookHost = "notification_webhook_host", "http://127.0.0.1:9797";
    /// Hours a finished task stays before it is gone (Glance's `[task] task_time_to_live`).
    TaskTimeToLive = "task_time_to_live", "48";
    /// The secure hash computed over image data (`os_hash_algo`): sha256, sha384 or sha512.
    HashingAlgorithm = "hashing_algorithm", "sha512";
}

/// Seconds a finished task stays (`task_time_to_live`, whole hours ≥ 0).
pub(crate) fn task_time_to_live(vars: &dyn Variables) -> Result<i64, ConfigError> {
    let hours: i64 = number(vars, Var::TaskTimeToLive)?;
    if !(0..=1_000_000).contains(&hours) {
        return Err(ConfigError(format!(
            "task_time_to_live must be between 0 and 1000000 hours, not {hours}"
        )));
    }
    Ok(hours * 3600)
}

/// The value of `var`, trimmed; the default when unset or blank.
pub(crate) fn value(vars: &dyn Variables, var: Var) -> String {
    vars.get(var.name())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| var.default().to_string())
}

/// `var` parsed as a number; a value that is not one is a [`ConfigError`].
pub(crate) fn number<T: std::str::FromStr>(
    vars: &dyn Variables,
    var: Var,
) -> Result<T, ConfigError> {
    let text = value(vars, var);
    text.parse()
        .map_err(|_| ConfigError(format!("{} must be a number, not '{text}'", var.name())))
}

/// `var` as a boolean: "true", "1", "yes" and "on" are true.
pub(crate) fn flag(vars: &dyn Variables, var: Var) -> bool {
    parse_bool(Some(&value(vars, var)))
}

/// `var` as a comma-separated list, blanks dropped.
pub(crate) fn list(vars: &dyn Variables, var: Var) -> Vec<String> {
    value(vars, var)
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Reads a boolean: "true", "1", "yes" and "on" are true.
pub(crate) fn parse_bool(v: Option<&str>) -> bool {
    matches!(
        v.map(|s| s.trim().to_ascii_lowercase()).as_deref(),
        Some("true" | "1" | "yes" | "on")
    )
}

/// Parses Glance's size syntax: `1024`, `10GB`, `5 MB`, `2TB` (binary units).
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    let n: u64 = s[..digits].parse().ok()?;
    let mult: u64 = match s[digits..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Reads every section (and the policy overrides), so a broken configuration
/// is found once, at start-up, with a message naming the variable.
pub fn check(vars: &dyn Variables) -> Result<(), ConfigError> {
    for driver in list(vars, Var::NotificationDriver) {
        if !["noop", "redis", "webhook"].contains(&driver.as_str()) {
            return Err(ConfigError(format!(
                "notification_driver: unknown driver '{driver}' (noop, redis, webhook)"
            )));
        }
    }
    let webhook = value(vars, Var::NotificationWebhookUrl);
    let host = value(vars, Var::NotificationWebhookHost);
    if !webhook.starts_with(&format!("{}/", host.trim_end_matches('/'))) && webhook != host {
        return Err(ConfigError(format!(
            "notification_webhook_url {webhook} is not on notification_webhook_host {host} \
             (the host the manifest lets the components reach)"
        )));
    }
    AuthSettings::load(vars)?;
    ImageLimits::load(vars)?;
    StoreSettings::load(vars)?;
    CacheSettings::load(vars)?;
    crate::auth::policy::Policy::load(vars)?;
    task_time_to_live(vars)?;
    Ok(())
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

    /// `[variables]` of the repository's spin.toml: name → default.
    fn manifest_defaults() -> Vec<(String, String)> {
        let text = include_str!("../../spin.toml");
        let mut in_vars = false;
        let mut out = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_vars = line == "[variables]";
                continue;
            }
            if !in_vars || line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (name, rest) = line.split_once('=').expect("name = { default = ... }");
            let default = rest
                .split_once("default = \"")
                .and_then(|(_, d)| d.split_once('"'))
                .map(|(d, _)| d.to_string())
                .unwrap_or_else(|| panic!("no default for {name}"));
            out.push((name.trim().to_string(), default));
        }
        out
    }

    #[test]
    fn spin_toml_variables_and_their_defaults_agree_with_the_code() {
        let manifest = manifest_defaults();
        let code: Vec<(String, String)> = Var::ALL
            .iter()
            .map(|v| (v.name().to_string(), v.default().to_string()))
            .collect();
        assert_eq!(manifest, code, "spin.toml [variables] vs settings::Var");
    }

    /// The variable names `[component.<id>.variables]` declares.
    fn component_variables(id: &str) -> Vec<String> {
        let text = include_str!("../../spin.toml");
        let header = format!("[component.{id}.variables]");
        let mut inside = false;
        let mut out = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                inside = line == header;
                continue;
            }
            if inside && !line.is_empty() && !line.starts_with('#') {
                if let Some((name, _)) = line.split_once('=') {
                    out.push(name.trim().to_string());
                }
            }
        }
        out
    }

    #[test]
    fn the_images_component_is_given_every_variable_it_reads() {
        let given = component_variables("images");
        // It serves the members and discovery services too (the catch-all
        // route, after version negotiation), so it reads every variable.
        for var in Var::ALL {
            assert!(
                given.iter().any(|g| g == var.name()),
                "spin.toml: [component.images.variables] lacks {}",
                var.name()
            );
        }
        for name in given {
            assert!(
                Var::ALL.iter().any(|v| v.name() == name),
                "spin.toml gives the images component an unknown variable {name}"
            );
        }
    }

    #[test]
    fn blank_means_default_and_numbers_are_checked() {
        let v = fixed_vars(&[("api_limit_max", " "), ("kv_chunk_size", "lots")]);
        assert_eq!(value(&v, Var::ApiLimitMax), "1000");
        let err = number::<usize>(&v, Var::KvChunkSize).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration error: kv_chunk_size must be a number, not 'lots'"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("10GB"), Some(10 << 30));
        assert_eq!(parse_size("5 MB"), Some(5 << 20));
        assert_eq!(parse_size("lots"), None);
    }

    #[test]
    fn the_defaults_pass_the_check() {
        check(&fixed_vars(&[])).unwrap();
        let err = check(&fixed_vars(&[("stores", "kv,floppy")])).unwrap_err();
        assert!(err.0.contains("floppy"), "{err}");
    }
}
