//! Which image attributes exist, who may write them, and what values they take.
//!
//! This mirrors Glance's image schema (`/v2/schemas/image`, served verbatim from
//! `schemas/image.json`) and the attribute lists of its request deserializer.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::image::{ContainerFormat, DiskFormat};

/// The wire names of an enum's values.
fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| name(*v)).collect()
}

/// Attributes a client may never write.
const READ_ONLY: [&str; 13] = [
    "created_at",
    "updated_at",
    "status",
    "checksum",
    "size",
    "virtual_size",
    "direct_url",
    "self",
    "file",
    "schema",
    "id",
    "os_hash_algo",
    "os_hash_value",
];

/// Attributes refused on create before anything else (Glance's `_disallowed_properties`).
const DISALLOWED_ON_CREATE: [&str; 5] = ["direct_url", "self", "file", "schema", "stores"];

/// Names reserved for the service.
const RESERVED: [&str; 3] = ["location", "deleted", "deleted_at"];

/// Prefix of properties the service manages itself.
pub const RESERVED_NAMESPACE: &str = "os_glance";

/// Attributes stored as columns rather than custom properties.
pub const BASE: [&str; 17] = [
    "checksum",
    "created_at",
    "container_format",
    "disk_format",
    "id",
    "min_disk",
    "min_ram",
    "name",
    "size",
    "virtual_size",
    "status",
    "tags",
    "owner",
    "updated_at",
    "visibility",
    "protected",
    "os_hidden",
];

/// Whether `name` is a base attribute (never removable, always present).
pub fn is_base(name: &str) -> bool {
    BASE.contains(&name)
}

/// 403 if a create body names an attribute Glance refuses before validating
/// anything (`self`, `file`, `schema`, `direct_url`, `stores`).
pub fn check_create_disallowed(name: &str) -> ApiResult<()> {
    if DISALLOWED_ON_CREATE.contains(&name) {
        return Err(ApiError::forbidden(format!(
            "Attribute '{name}' is read-only."
        )));
    }
    Ok(())
}

/// 403 if a create body sets an attribute only the service sets (`status`, `size`, ...).
pub fn check_create_read_only(name: &str) -> ApiResult<()> {
    if READ_ONLY.contains(&name) && name != "id" {
        return Err(ApiError::forbidden(format!(
            "Attribute '{name}' is read-only."
        )));
    }
    Ok(())
}

/// 403 if a custom property on create is reserved (`locations` too, which
/// only PATCH may set).
pub fn check_create_reserved(name: &str) -> ApiResult<()> {
    if name == "locations" {
        return Err(ApiError::forbidden("Attribute 'locations' is reserved."));
    }
    check_not_reserved(name)
}

/// 403 if `name` may not be written by a PATCH (read-only, reserved, `os_glance*`).
pub fn check_patchable(name: &str) -> ApiResult<()> {
    if READ_ONLY.contains(&name) {
        return Err(ApiError::forbidden(format!(
            "Attribute '{name}' is read-only."
        )));
    }
    check_not_reserved(name)
}

/// 403 if `name` is reserved for the service.
pub fn check_not_reserved(name: &str) -> ApiResult<()> {
    if RESERVED.contains(&name) || name.starts_with(RESERVED_NAMESPACE) {
        return Err(ApiError::forbidden(format!(
            "Attribute '{name}' is reserved."
        )));
    }
    Ok(())
}

/// Whether `s` has the shape of a UUID, as Glance's schema pattern checks it.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn schema_error(detail: String) -> ApiError {
    ApiError::bad_request(format!(
        "Provided object does not match schema 'image': {detail}"
    ))
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

fn string_or_null(name: &str, v: &Value, max: usize) -> ApiResult<()> {
    match v {
        Value::Null => Ok(()),
        Value::String(s) if s.chars().count() > max => Err(schema_error(format!(
            "'{s}' is too long (maximum {max} characters) on instance['{name}']"
        ))),
        Value::String(_) => Ok(()),
        other => Err(schema_error(format!(
            "{} is not of type 'null', 'string' on instance['{name}']",
            describe(other)
        ))),
    }
}

fn one_of(name: &str, v: &Value, allowed: &[&str], nullable: bool) -> ApiResult<()> {
    match v {
        Value::Null if nullable => Ok(()),
        Value::String(s) if allowed.contains(&s.as_str()) => Ok(()),
        other => Err(schema_error(format!(
            "{} is not one of {:?} on instance['{name}']",
            describe(other),
            allowed
        ))),
    }
}

fn uuid_or_null(name: &str, v: &Value) -> ApiResult<()> {
    match v {
        Value::Null => Ok(()),
        Value::String(s) if is_uuid(s) => Ok(()),
        other => Err(schema_error(format!(
            "{} does not match the UUID pattern on instance['{name}']",
            describe(other)
        ))),
    }
}

fn string(name: &str, v: &Value) -> ApiResult<()> {
    match v {
        Value::String(_) => Ok(()),
        other => Err(schema_error(format!(
            "{} is not of type 'string' on instance['{name}']",
            describe(other)
        ))),
    }
}

fn non_negative_int(name: &str, v: &Value) -> ApiResult<()> {
    match v.as_i64() {
        Some(n) if n >= 0 => Ok(()),
        Some(n) => Err(ApiError::bad_request(format!(
            "Invalid value '{n}' for parameter '{name}': Cannot be a negative value"
        ))),
        None => Err(schema_error(format!(
            "{} is not of type 'integer' on instance['{name}']",
            describe(v)
        ))),
    }
}

/// Validates `value` for attribute `name` against the image schema: 400 when it
/// does not fit. Unknown names are custom properties and must be strings.
pub fn validate_value(name: &str, value: &Value) -> ApiResult<()> {
    if READ_ONLY.contains(&name) && name != "id" {
        // Refused as read-only (403) by the caller, whatever the value.
        return Ok(());
    }
    match name {
        "id" => match value {
            Value::String(s) if is_uuid(s) => Ok(()),
            other => Err(schema_error(format!(
                "{} does not match the UUID pattern on instance['id']",
                describe(other)
            ))),
        },
        "name" | "owner" => string_or_null(name, value, 255),
        "visibility" => one_of(
            name,
            value,
            &["community", "public", "private", "shared"],
            false,
        ),
        "protected" | "os_hidden" => match value {
            Value::Bool(_) => Ok(()),
            other => Err(schema_error(format!(
                "{} is not of type 'boolean' on instance['{name}']",
                describe(other)
            ))),
        },
        "disk_format" => one_of(
            name,
            value,
            &names(DiskFormat::ALL, DiskFormat::as_str),
            true,
        ),
        "container_format" => one_of(
            name,
            value,
            &names(ContainerFormat::ALL, ContainerFormat::as_str),
            true,
        ),
        "min_ram" | "min_disk" => non_negative_int(name, value),
        "tags" => match value {
            Value::Array(items) => items.iter().try_for_each(|t| match t {
                Value::String(s) if s.chars().count() <= 255 => Ok(()),
                Value::String(_) => Err(schema_error(
                    "a tag is too long (maximum 255 characters) on instance['tags']".into(),
                )),
                other => Err(schema_error(format!(
                    "{} is not of type 'string' on instance['tags']",
                    describe(other)
                ))),
            }),
            other => Err(schema_error(format!(
                "{} is not of type 'array' on instance['tags']",
                describe(other)
            ))),
        },
        "kernel_id" | "ramdisk_id" => uuid_or_null(name, value),
        "cinder_encryption_key_deletion_policy" => {
            one_of(name, value, &["on_image_deletion", "do_not_delete"], false)
        }
        _ => string(name, value),
    }
}

/// 403 if `name` cannot be a custom property: it names a base or read-only
/// attribute, or one reserved for the service; 400 if it is too long. (The
/// v1 API, whose `x-image-meta-property-<name>` headers could name anything.)
pub fn check_property_name(name: &str) -> ApiResult<()> {
    if is_base(name)
        || READ_ONLY.contains(&name)
        || DISALLOWED_ON_CREATE.contains(&name)
        || name == "locations"
    {
        return Err(ApiError::forbidden(format!(
            "Attribute '{name}' is reserved."
        )));
    }
    check_not_reserved(name)?;
    check_custom_key(name)
}

/// 400 if a custom property name is longer than Glance's column allows.
pub fn check_custom_key(name: &str) -> ApiResult<()> {
    if name.chars().count() > 255 {
        return Err(ApiError::bad_request(
            "Custom property should not be greater than 255 characters.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use serde_json::json;

    #[test]
    fn uuid_shape() {
        assert!(is_uuid("0f5c2f2a-9a8e-4b8a-a3f6-0a0b0c0d0e0f"));
        assert!(is_uuid("0F5C2F2A-9A8E-4B8A-A3F6-0A0B0C0D0E0F"));
        assert!(!is_uuid("0f5c2f2a9a8e4b8aa3f60a0b0c0d0e0f"));
        assert!(!is_uuid("0f5c2f2a-9a8e-4b8a-a3f6-0a0b0c0d0e0g"));
        assert!(!is_uuid(""));
    }

    #[test]
    fn read_only_and_reserved_are_forbidden() {
        assert_eq!(
            check_create_read_only("status").unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            check_create_disallowed("self").unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert!(check_create_read_only("id").is_ok());
        assert!(check_create_disallowed("id").is_ok());
        assert_eq!(
            check_create_reserved("locations").unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            check_patchable("id").unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            check_not_reserved("deleted").unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        let e = check_not_reserved("os_glance_x").unwrap_err();
        assert_eq!(e.message, "Attribute 'os_glance_x' is reserved.");
        assert!(check_patchable("os_distro").is_ok());
        for reserved in [
            "name",
            "size",
            "self",
            "locations",
            "deleted",
            "os_glance_x",
        ] {
            assert_eq!(
                check_property_name(reserved).unwrap_err().status,
                StatusCode::FORBIDDEN,
                "{reserved}"
            );
        }
        assert!(check_property_name("os_distro").is_ok());
    }

    #[test]
    fn values_follow_the_schema() {
        assert!(validate_value("name", &json!(null)).is_ok());
        assert!(validate_value("name", &json!("x".repeat(255))).is_ok());
        assert!(validate_value("name", &json!("x".repeat(256))).is_err());
        assert!(validate_value("disk_format", &json!("qcow2")).is_ok());
        assert!(validate_value("disk_format", &json!(null)).is_ok());
        assert!(validate_value("disk_format", &json!("floppy")).is_err());
        assert!(validate_value("visibility", &json!(null)).is_err());
        assert!(validate_value("protected", &json!("true")).is_err());
        assert!(validate_value("min_ram", &json!(-1)).is_err());
        assert!(validate_value("min_ram", &json!(1.5)).is_err());
        assert!(validate_value("tags", &json!(["a", 1])).is_err());
        assert!(validate_value("ramdisk_id", &json!("nope")).is_err());
        assert!(validate_value("os_distro", &json!(1)).is_err());
        assert!(validate_value("os_distro", &json!("debian")).is_ok());
    }
}
