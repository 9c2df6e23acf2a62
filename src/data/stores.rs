//! The stores of a request: opening the configured ones over the host's
//! ports, and finding the one that holds a location.

use std::rc::Rc;

use crate::data::blob::http::HttpStore;
use crate::data::blob::kv::KvStore;
use crate::data::blob::s3::S3Store;
use crate::data::blob::{BlobError, BlobStore, Location};
use crate::ports::{HttpClient, KeyValueOpener};
use crate::settings::StoreSettings;

pub use crate::data::blob::StoreId;

/// The key-value store label that holds image data (granted in spin.toml).
pub const DATA_LABEL: &str = "image_data";

/// The key-value store label of the image cache (granted in spin.toml).
pub const CACHE_LABEL: &str = "image_cache";

/// Key prefix of staged data (`glance-direct`) in the data store.
const STAGING_PREFIX: &str = "staging/";

/// The opened stores of a request.
pub struct Stores {
    settings: StoreSettings,
    kv: KvStore,
    staging: KvStore,
    cache: KvStore,
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
        let kv_store = KvStore::new(DATA_LABEL, data, settings.kv_chunk_size);
        Ok(Stores {
            staging: kv_store.clone().with_key_prefix(STAGING_PREFIX),
            cache: KvStore::new(CACHE_LABEL, kv.open(CACHE_LABEL)?, settings.kv_chunk_size),
            kv: kv_store,
            s3: settings.s3.clone().map(|s| S3Store::new(s, http.clone())),
            http: HttpStore::new(http),
            settings,
        })
    }

    /// The settings the stores were opened with.
    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// An enabled store by id.
    pub fn get(&self, id: StoreId) -> Option<&dyn BlobStore> {
        if !self.settings.has(id) {
            return None;
        }
        self.any(id)
    }

    /// A store by id, enabled or not (data written before the configuration
    /// changed stays readable and removable).
    fn any(&self, id: StoreId) -> Option<&dyn BlobStore> {
        match id {
            StoreId::Kv => Some(&self.kv),
            StoreId::S3 => self.s3.as_ref().map(|s| s as &dyn BlobStore),
            StoreId::Http => Some(&self.http),
        }
    }

    /// The store uploads go to by default.
    pub fn default_store(&self) -> Option<&dyn BlobStore> {
        self.get(self.settings.default)
    }

    /// The staging area of interoperable import (`glance-direct`): the data
    /// key-value store under its own key prefix, whatever stores are enabled.
    pub fn staging(&self) -> &KvStore {
        &self.staging
    }

    /// The image cache's store (its own key-value store; see `data::cache`).
    pub fn cache(&self) -> &KvStore {
        &self.cache
    }

    /// The store that holds `location` (the cache's data included).
    pub fn for_location(&self, location: &Location) -> Option<&dyn BlobStore> {
        if location.store == StoreId::Kv
            && location.url.starts_with(&format!("kv://{CACHE_LABEL}/"))
        {
            return Some(&self.cache);
        }
        self.any(location.store)
    }
}
