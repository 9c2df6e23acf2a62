//! The v1 representation of an image: the JSON of `POST`/`PUT` answers and
//! `/v1/images/detail` (Glance 15's registry `make_image_dict`), the brief
//! entries of `/v1/images`, and how v2 attributes read in v1 terms.

use serde_json::{json, Map, Value};

use crate::image::{Image, Status, Visibility};
use crate::timestamp::Timestamp;

/// v1's `is_public`: only `public` is; `private`, `shared` and `community`
/// are not.
pub(crate) fn is_public(img: &Image) -> bool {
    img.visibility == Visibility::Public
}

/// Whether the record is a deleted image's tombstone (listed by `changes-since`).
pub(crate) fn is_deleted(img: &Image) -> bool {
    img.status == Status::Deleted
}

/// `True` / `False`, as Python printed booleans into headers.
pub(crate) fn python_bool(b: bool) -> String {
    if b { "True" } else { "False" }.to_string()
}

/// Glance 15's v1 timestamp, `2026-12-01T22:11:44.000000` (UTC, no zone;
/// this service keeps whole seconds).
pub(crate) fn timestamp(ts: Timestamp) -> String {
    let s = ts.to_string();
    format!("{}.000000", s.trim_end_matches('Z'))
}

fn opt(v: &Option<String>) -> Value {
    v.clone().map_or(Value::Null, Value::String)
}

/// The detailed representation. A queued image's unknown size reads 0, as
/// v1 recorded it.
pub(crate) fn image_json(img: &Image) -> Value {
    let props: Map<String, Value> = img
        .visible_properties()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let deleted = is_deleted(img);
    json!({
        "id": img.id,
        "name": opt(&img.name),
        "disk_format": img.disk_format.map(|f| f.as_str()),
        "container_format": img.container_format.map(|f| f.as_str()),
        "size": img.size.unwrap_or(0),
        "virtual_size": img.virtual_size,
        "checksum": opt(&img.checksum),
        "status": img.status.as_str(),
        "is_public": is_public(img),
        "protected": img.protected,
        "owner": opt(&img.owner),
        "min_ram": img.min_ram,
        "min_disk": img.min_disk,
        "created_at": timestamp(img.created_at),
        "updated_at": timestamp(img.updated_at),
        "deleted_at": if deleted { Value::String(timestamp(img.updated_at)) } else { Value::Null },
        "deleted": deleted,
        "properties": props,
    })
}

/// An entry of the brief list `GET /v1/images`.
pub(crate) fn brief_json(img: &Image) -> Value {
    json!({
        "id": img.id,
        "name": opt(&img.name),
        "size": img.size.unwrap_or(0),
        "disk_format": img.disk_format.map(|f| f.as_str()),
        "container_format": img.container_format.map(|f| f.as_str()),
        "checksum": opt(&img.checksum),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_attributes_in_v1_terms() {
        let mut img = Image::new("i".into(), Some("p".into()), Timestamp(86_400));
        img.properties.insert("os_distro".into(), "debian".into());
        let j = image_json(&img);
        assert_eq!(j["is_public"], false, "shared is not public");
        assert_eq!(j["size"], 0);
        assert_eq!(j["created_at"], "1970-01-02T00:00:00.000000");
        assert_eq!(j["properties"], json!({"os_distro": "debian"}));
        assert_eq!(
            (j["deleted"].clone(), j["deleted_at"].clone()),
            (json!(false), Value::Null)
        );
        img.visibility = Visibility::Public;
        assert_eq!(image_json(&img)["is_public"], true);
        assert_eq!(brief_json(&img).as_object().map(|o| o.len()), Some(6));
    }
}
