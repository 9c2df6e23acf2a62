//! The image entity: Glance's domain vocabulary and its JSON representation.

pub mod access;
mod imports;
pub mod list_query;
pub mod member;
pub mod patch;
pub mod schema;
mod status;
pub mod update;

pub use status::{DataFacts, Status};

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::data::blob::Location;
use crate::timestamp::Timestamp;
use crate::wire_enum::wire_enum;

wire_enum! {
    /// Who may see an image, in schema order.
    pub enum Visibility {
        /// Everyone by id; listed only when asked for.
        Community = "community",
        /// Everyone, listed for everyone.
        Public = "public",
        /// The owner only.
        Private = "private",
        /// The owner and projects it is shared with.
        Shared = "shared",
    }
}

wire_enum! {
    /// Disk formats Glance accepts by default (`[image_format] disk_formats`).
    pub enum DiskFormat {
        /// Amazon machine image.
        Ami = "ami",
        /// Amazon ramdisk image.
        Ari = "ari",
        /// Amazon kernel image.
        Aki = "aki",
        /// Virtual PC / Hyper-V.
        Vhd = "vhd",
        /// Hyper-V, newer.
        Vhdx = "vhdx",
        /// VMware.
        Vmdk = "vmdk",
        /// Unstructured bytes.
        Raw = "raw",
        /// QEMU copy-on-write v2.
        Qcow2 = "qcow2",
        /// VirtualBox.
        Vdi = "vdi",
        /// ISO 9660 optical disc.
        Iso = "iso",
        /// Virtuozzo / OpenVZ.
        Ploop = "ploop",
    }
}

wire_enum! {
    /// Container formats Glance accepts by default (`[image_format] container_formats`).
    pub enum ContainerFormat {
        /// Amazon machine image.
        Ami = "ami",
        /// Amazon ramdisk image.
        Ari = "ari",
        /// Amazon kernel image.
        Aki = "aki",
        /// No container: the disk image itself.
        Bare = "bare",
        /// Open Virtualization Format.
        Ovf = "ovf",
        /// OVF archive.
        Ova = "ova",
        /// A docker tar archive.
        Docker = "docker",
        /// A compressed archive.
        Compressed = "compressed",
    }
}

/// An image record (metadata; the bytes live in blob storage).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// UUID.
    pub id: String,
    /// Descriptive name.
    pub name: Option<String>,
    /// Lifecycle state.
    pub status: Status,
    /// Who may see it.
    pub visibility: Visibility,
    /// Protected images cannot be deleted.
    pub protected: bool,
    /// Hidden images are left out of default lists.
    pub os_hidden: bool,
    /// md5 of the data, hex.
    pub checksum: Option<String>,
    /// Algorithm of `os_hash_value`.
    pub os_hash_algo: Option<String>,
    /// Secure hash of the data, hex.
    pub os_hash_value: Option<String>,
    /// Owning project.
    pub owner: Option<String>,
    /// Size of the data in bytes.
    pub size: Option<i64>,
    /// Virtual disk size in bytes, when the format tells.
    pub virtual_size: Option<i64>,
    /// Minimum disk in GB to boot.
    pub min_disk: i64,
    /// Minimum RAM in MB to boot.
    pub min_ram: i64,
    /// Disk format (qcow2, raw, ...).
    pub disk_format: Option<DiskFormat>,
    /// Container format (bare, ovf, ...).
    pub container_format: Option<ContainerFormat>,
    /// Registration time.
    pub created_at: Timestamp,
    /// Last modification time.
    pub updated_at: Timestamp,
    /// Tags: a set, kept in insertion order.
    pub tags: Vec<String>,
    /// Custom (additional) string properties.
    pub properties: BTreeMap<String, String>,
    /// Where the data lives (one entry per store holding a copy).
    pub locations: Vec<Location>,
    /// Data staged for interoperable import (`glance-direct`), not yet imported.
    pub staged: Option<Staged>,
    /// Optimistic-concurrency counter, bumped on every save.
    pub revision: i64,
}

/// Staged data and what was learnt about it while staging.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Staged {
    /// Where the staged bytes are.
    pub location: Location,
    /// md5 of the staged data.
    pub checksum: String,
    /// sha512 of the staged data.
    pub os_hash_value: String,
    /// What format inspection saw, judged at import time.
    pub inspection: Option<crate::data::receive::InspectionRecord>,
}

/// Custom properties the API never shows (Glance's `_hidden_properties`).
const HIDDEN_PROPERTIES: [&str; 2] = ["os_glance_stage_host", "os_glance_hash_op_host"];

impl Image {
    /// A new queued image with Glance's defaults.
    pub fn new(id: String, owner: Option<String>, now: Timestamp) -> Self {
        Image {
            id,
            name: None,
            status: Status::Queued,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            owner,
            size: None,
            virtual_size: None,
            min_disk: 0,
            min_ram: 0,
            disk_format: None,
            container_format: None,
            created_at: now,
            updated_at: now,
            tags: Vec::new(),
            properties: BTreeMap::new(),
            locations: Vec::new(),
            staged: None,
            revision: 0,
        }
    }

    /// Root-relative link to this image.
    pub fn self_link(&self) -> String {
        format!("/v2/images/{}", self.id)
    }

    /// Adds a tag unless present (tags are a set).
    pub fn add_tag(&mut self, tag: &str) {
        if !self.tags.iter().any(|t| t == tag) {
            self.tags.push(tag.to_string());
        }
    }

    /// Replaces all tags, dropping duplicates.
    pub fn set_tags<I: IntoIterator<Item = String>>(&mut self, tags: I) {
        self.tags.clear();
        for t in tags {
            self.add_tag(&t);
        }
    }

    /// The custom properties the API shows (all but Glance's hidden ones).
    pub fn visible_properties(&self) -> impl Iterator<Item = (&String, &String)> {
        self.properties
            .iter()
            .filter(|(k, _)| !HIDDEN_PROPERTIES.contains(&k.as_str()))
    }

    /// The API representation (show, list, create, update responses). In
    /// multi-store mode it also names the stores holding the data.
    pub fn to_json(&self, multi_store: bool) -> Value {
        let mut m = Map::new();
        for (k, v) in self.visible_properties() {
            m.insert(k.clone(), Value::String(v.clone()));
        }
        let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        let opt_int = |v: Option<i64>| v.map_or(Value::Null, Value::from);
        m.insert("name".into(), opt(&self.name));
        let name = |v: Option<&'static str>| v.map_or(Value::Null, Value::from);
        m.insert(
            "disk_format".into(),
            name(self.disk_format.map(DiskFormat::as_str)),
        );
        m.insert(
            "container_format".into(),
            name(self.container_format.map(ContainerFormat::as_str)),
        );
        m.insert("visibility".into(), self.visibility.as_str().into());
        m.insert("size".into(), opt_int(self.size));
        m.insert("virtual_size".into(), opt_int(self.virtual_size));
        m.insert("status".into(), self.status.as_str().into());
        m.insert("checksum".into(), opt(&self.checksum));
        m.insert("protected".into(), self.protected.into());
        m.insert("min_ram".into(), self.min_ram.into());
        m.insert("min_disk".into(), self.min_disk.into());
        m.insert("owner".into(), opt(&self.owner));
        m.insert("os_hidden".into(), self.os_hidden.into());
        m.insert("os_hash_algo".into(), opt(&self.os_hash_algo));
        m.insert("os_hash_value".into(), opt(&self.os_hash_value));
        m.insert("id".into(), self.id.clone().into());
        m.insert("created_at".into(), self.created_at.to_string().into());
        m.insert("updated_at".into(), self.updated_at.to_string().into());
        m.insert(
            "tags".into(),
            Value::Array(self.tags.iter().cloned().map(Value::String).collect()),
        );
        let link = self.self_link();
        m.insert("file".into(), format!("{link}/file").into());
        m.insert("self".into(), link.into());
        m.insert("schema".into(), "/v2/schemas/image".into());
        if multi_store && !self.locations.is_empty() {
            let stores: Vec<&str> = self.locations.iter().map(|l| l.store.as_str()).collect();
            m.insert("stores".into(), stores.join(",").into());
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_image_has_glance_defaults() {
        let img = Image::new("id1".into(), Some("p".into()), Timestamp(0));
        let j = img.to_json(false);
        assert_eq!(j["status"], "queued");
        assert_eq!(j["visibility"], "shared");
        assert_eq!(j["protected"], false);
        assert_eq!(j["min_disk"], 0);
        assert_eq!(j["size"], Value::Null);
        assert_eq!(j["checksum"], Value::Null);
        assert_eq!(j["tags"], serde_json::json!([]));
        assert_eq!(j["self"], "/v2/images/id1");
        assert_eq!(j["file"], "/v2/images/id1/file");
        assert_eq!(j["schema"], "/v2/schemas/image");
        assert_eq!(j["created_at"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn custom_properties_show_except_hidden_ones() {
        let mut img = Image::new("id1".into(), None, Timestamp(0));
        img.properties.insert("os_distro".into(), "debian".into());
        img.properties
            .insert("os_glance_stage_host".into(), "h".into());
        let j = img.to_json(false);
        assert_eq!(j["os_distro"], "debian");
        assert!(j.get("os_glance_stage_host").is_none());
    }

    #[test]
    fn tags_are_a_set() {
        let mut img = Image::new("id1".into(), None, Timestamp(0));
        img.set_tags(["a".to_string(), "b".to_string(), "a".to_string()]);
        img.add_tag("b");
        assert_eq!(img.tags, vec!["a", "b"]);
    }
}
