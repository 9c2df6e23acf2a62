//! Which stores hold image data, how they are configured (Spin variables),
//! and opening them over the host's ports.

use std::rc::Rc;

use crate::data::blob::http::HttpStore;
use crate::data::blob::kv::{KvStore, DEFAULT_CHUNK_SIZE};
use crate::data::blob::s3::{S3Settings, S3Store};
use crate::data::blob::sigv4::Credentials;
use crate::data::blob::{BlobError, BlobStore, Location};
use crate::error::{ApiError, ApiResult};
use crate::ports::outbound::HttpClient;
use crate::ports::KeyValueOpener;
use crate::ports::Variables;
use crate::settings::parse_bool;

/// The key-value store label that holds image data (granted in spin.toml).
pub const DATA_LABEL: &str = "image_data";

/// Import methods Glance enables by default.
pub const DEFAULT_IMPORT_METHODS: &str = "glance-direct,web-download,copy-image";

/// A configured store, as `/v2/info/stores` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// Store id.
    pub id: String,
    /// Human description.
    pub description: String,
    /// Whether the store only serves existing data.
    pub read_only: bool,
}

/// Data-plane settings read from variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Enabled stores, in order (`stores` variable, e.g. `kv,s3`).
    pub enabled: Vec<StoreInfo>,
    /// Where uploads go unless the client picks a store.
    pub default: String,
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
}

impl StoreSettings {
    /// Reads the settings; an unusable configuration is a 500 that says why.
    pub fn load(vars: &dyn Variables) -> ApiResult<Self> {
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut enabled = Vec::new();
        for id in get("stores").unwrap_or_else(|| "kv".into()).split(',') {
            let id = id.trim();
            let (description, read_only) = match id {
                "kv" => ("Image data in chunks in a Spin key-value store", false),
                "s3" => ("S3-compatible object store", false),
                "http" => ("External http(s) locations, read-only", true),
                "" => continue,
                other => {
                    return Err(ApiError::internal(format!(
                        "unknown store '{other}' in `stores`"
                    )))
                }
            };
            enabled.push(StoreInfo {
                id: id.to_string(),
                description: description.to_string(),
                read_only,
            });
        }
        let default = get("default_store").unwrap_or_else(|| "kv".into());
        if !enabled.iter().any(|s| s.id == default && !s.read_only) {
            return Err(ApiError::internal(format!(
                "default_store '{default}' is not a writable enabled store"
            )));
        }
        let s3 = if enabled.iter().any(|s| s.id == "s3") {
            Some(S3Settings {
                endpoint: get("s3_endpoint")
                    .ok_or_else(|| ApiError::internal("s3_endpoint is not set"))?,
                bucket: get("s3_bucket")
                    .ok_or_else(|| ApiError::internal("s3_bucket is not set"))?,
                credentials: Credentials {
                    access_key: get("s3_access_key").unwrap_or_default(),
                    secret_key: get("s3_secret_key").unwrap_or_default(),
                    region: get("s3_region").unwrap_or_else(|| "us-east-1".into()),
                },
                path_style: get("s3_path_style").is_none_or(|v| parse_bool(Some(&v))),
                part_size: get("s3_part_size")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(8 << 20),
            })
        } else {
            None
        };
        Ok(StoreSettings {
            enabled,
            default,
            kv_chunk_size: get("kv_chunk_size")
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_CHUNK_SIZE),
            s3,
            image_size_cap: get("image_size_cap")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1 << 40),
            user_storage_quota: get("user_storage_quota")
                .and_then(|v| parse_size(&v))
                .filter(|n| *n > 0),
            import_methods: get("import_methods")
                .unwrap_or_else(|| DEFAULT_IMPORT_METHODS.into())
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect(),
        })
    }

    /// More than one store: Glance's multi-store mode (`stores` field,
    /// `/v2/info/stores`, `OpenStack-image-store-ids`).
    pub fn multi_store(&self) -> bool {
        self.enabled.len() > 1
    }

    /// Whether `id` is an enabled store.
    pub fn has(&self, id: &str) -> bool {
        self.enabled.iter().any(|s| s.id == id)
    }
}

/// Parses Glance's size syntax: `1024`, `10GB`, `5 MB`, `2TB` (binary units).
pub fn parse_size(s: &str) -> Option<u64> {
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

/// The opened stores of a request.
pub struct Stores {
    settings: StoreSettings,
    kv: Option<KvStore>,
    staging: Option<KvStore>,
    s3: Option<S3Store>,
    http: HttpStore,
}

impl Stores {
    /// Opens the enabled stores over the host ports. The key-value store is
    /// opened lazily by the host, so requests that never touch data do not pay.
    pub fn open(
        settings: StoreSettings,
        kv: &dyn KeyValueOpener,
        http: Rc<dyn HttpClient>,
    ) -> Result<Self, BlobError> {
        let data = kv.open(DATA_LABEL)?;
        let chunk = settings.kv_chunk_size;
        let kv_store = KvStore::new("kv", DATA_LABEL, data, chunk);
        Ok(Stores {
            staging: Some(kv_store.clone().with_key_prefix("staging/")),
            kv: settings.has("kv").then_some(kv_store),
            s3: settings
                .s3
                .clone()
                .map(|s| S3Store::new("s3", s, http.clone())),
            http: HttpStore::new(http),
            settings,
        })
    }

    /// The settings the stores were opened with.
    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// An enabled store by id.
    pub fn get(&self, id: &str) -> Option<&dyn BlobStore> {
        match id {
            "kv" => self.kv.as_ref().map(|s| s as &dyn BlobStore),
            "s3" => self.s3.as_ref().map(|s| s as &dyn BlobStore),
            "http" if self.settings.has("http") => Some(&self.http),
            _ => None,
        }
    }

    /// The store uploads go to by default.
    pub fn default_store(&self) -> Option<&dyn BlobStore> {
        self.get(&self.settings.default)
    }

    /// The staging area of interoperable import (`glance-direct`).
    pub fn staging(&self) -> Option<&KvStore> {
        self.staging.as_ref()
    }

    /// The http store, for locations (reachable even when not listed).
    pub fn http(&self) -> &HttpStore {
        &self.http
    }

    /// The store that holds `location`.
    pub fn for_location(&self, location: &Location) -> Option<&dyn BlobStore> {
        match location.store.as_str() {
            "staging" => self.staging.as_ref().map(|s| s as &dyn BlobStore),
            "http" => Some(&self.http),
            id => self.get(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::settings::fixed_vars as vars;

    #[test]
    fn defaults_are_single_store_kv() {
        let s = StoreSettings::load(&vars(&[])).unwrap();
        assert_eq!(s.default, "kv");
        assert!(!s.multi_store());
        assert_eq!(s.kv_chunk_size, DEFAULT_CHUNK_SIZE);
        assert!(s.kv_chunk_size <= 1_000_000);
        assert_eq!(s.image_size_cap, 1 << 40);
        assert_eq!(
            s.import_methods,
            vec!["glance-direct", "web-download", "copy-image"]
        );
    }

    #[test]
    fn multi_store_needs_s3_settings() {
        assert!(StoreSettings::load(&vars(&[("stores", "kv,s3")])).is_err());
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

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("10GB"), Some(10 << 30));
        assert_eq!(parse_size("5 MB"), Some(5 << 20));
        assert_eq!(parse_size("lots"), None);
    }
}
