//! Notifications: Glance's events (`image.create`, `image.upload`,
//! `image.member.create`, `task.success`, ...) with Glance's payloads,
//! published after the response — to a Redis channel
//! (`notification_redis_url`, oslo.messaging's envelope) and/or an HTTP
//! webhook (`notification_webhook_url`, a CloudEvents JSON document). A
//! notification never fails or slows the request that caused it: it is sent
//! in deferred work, and a failure is logged.

mod publish;

use serde_json::{json, Map, Value};

use crate::db::tasks::Task;
use crate::image::member::Member;
use crate::image::{Image, Visibility};
use crate::timestamp::Timestamp;

pub(crate) use publish::publish;

/// One event, with Glance's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Glance's event type, e.g. `image.create`.
    pub event_type: &'static str,
    /// The payload as Glance formats it.
    pub payload: Value,
    /// When it happened.
    pub at: Timestamp,
}

impl Event {
    /// An image event (`image.create`, `image.update`, `image.prepare`,
    /// `image.upload`, `image.activate`, `image.delete`).
    pub fn image(event_type: &'static str, img: &Image) -> Event {
        Event {
            event_type,
            payload: image_payload(img),
            at: Timestamp::now(),
        }
    }

    /// A membership event (`image.member.create`, `.update`, `.delete`).
    pub fn member(event_type: &'static str, m: &Member) -> Event {
        let deleted = event_type.ends_with(".delete");
        Event {
            event_type,
            payload: json!({
                "image_id": m.image_id,
                "member_id": m.member_id,
                "status": m.status.as_str(),
                "created_at": m.created_at.to_string(),
                "updated_at": m.updated_at.to_string(),
                "deleted": deleted,
                "deleted_at": if deleted { Value::from(Timestamp::now().to_string()) } else { Value::Null },
            }),
            at: Timestamp::now(),
        }
    }

    /// A task event (`task.create`, `task.processing`, `task.success`,
    /// `task.failure`).
    pub fn task(event_type: &'static str, t: &Task) -> Event {
        Event {
            event_type,
            payload: json!({
                "id": t.id,
                "type": t.task_type,
                "status": t.status,
                "result": t.result,
                "owner": t.owner,
                "message": t.message,
                "expires_at": t.expires_at.map(|e| e.to_string()),
                "created_at": t.created_at.to_string(),
                "updated_at": t.updated_at.to_string(),
                "deleted": false,
                "deleted_at": Value::Null,
                "image_id": t.image_id,
                "request_id": t.request_id,
                "user_id": t.user_id,
            }),
            at: Timestamp::now(),
        }
    }
}

/// Glance's `format_image_notification`.
fn image_payload(img: &Image) -> Value {
    let mut properties = Map::new();
    for (k, v) in &img.properties {
        properties.insert(k.clone(), Value::String(v.clone()));
    }
    let deleted = img.status == crate::image::Status::Deleted;
    json!({
        "id": img.id,
        "name": img.name,
        "status": img.status.as_str(),
        "created_at": img.created_at.to_string(),
        "updated_at": img.updated_at.to_string(),
        "min_disk": img.min_disk,
        "min_ram": img.min_ram,
        "protected": img.protected,
        "checksum": img.checksum,
        "owner": img.owner,
        "disk_format": img.disk_format.map(|f| f.as_str()),
        "container_format": img.container_format.map(|f| f.as_str()),
        "size": img.size,
        "virtual_size": img.virtual_size,
        "is_public": img.visibility == Visibility::Public,
        "visibility": img.visibility.as_str(),
        "properties": properties,
        "tags": img.tags,
        "deleted": deleted,
        "deleted_at": if deleted { Value::from(img.updated_at.to_string()) } else { Value::Null },
        "os_hidden": img.os_hidden,
        "os_hash_algo": img.os_hash_algo,
        "os_hash_value": img.os_hash_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_payloads_have_glances_fields() {
        let mut img = Image::new("i".into(), Some("p".into()), Timestamp(0));
        img.properties.insert("os_distro".into(), "debian".into());
        let e = Event::image("image.create", &img);
        for field in [
            "id",
            "name",
            "status",
            "created_at",
            "updated_at",
            "min_disk",
            "min_ram",
            "protected",
            "checksum",
            "owner",
            "disk_format",
            "container_format",
            "size",
            "virtual_size",
            "is_public",
            "visibility",
            "properties",
            "tags",
            "deleted",
            "deleted_at",
            "os_hidden",
            "os_hash_algo",
            "os_hash_value",
        ] {
            assert!(e.payload.get(field).is_some(), "{field}");
        }
        assert_eq!(e.payload["properties"]["os_distro"], "debian");
        assert_eq!(e.payload["is_public"], false);
    }
}
