//! Image metadata in `x-image-meta-*` headers, both ways.
//!
//! In requests (`POST`/`PUT /v1/images`) each base attribute is one
//! `x-image-meta-<name>` header and each custom property one
//! `x-image-meta-property-<key>` header, as Glance 15 read them
//! (`glance/common/utils.py`, `get_image_meta_from_headers`): header names
//! are case-insensitive, `-` in a name stands for `_`, an unknown
//! `x-image-meta-<name>` is a 400. Values (and property keys) are
//! percent-decoded: python-glanceclient ≥ 2.11 percent-encodes every header
//! value before sending it, and Glance 15 stored `My%20Test%20Image`.
//!
//! In responses (`HEAD`/`GET /v1/images/{id}`) the image goes out the same
//! way. A value that is not printable ASCII (non-ASCII text, control
//! characters) is percent-encoded as UTF-8, and so is a property key that is
//! not a valid header name: response headers stay ASCII, the form clients
//! already send.

use std::collections::BTreeMap;

use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::api::v1::view;
use crate::api::ApiRequest;
use crate::error::{ApiError, ApiResult};
use crate::image::{ContainerFormat, DiskFormat, Image};
use crate::timestamp::Timestamp;

/// Prefix of every metadata header.
const META: &str = "x-image-meta-";
/// Prefix of custom property headers.
const PROPERTY: &str = "x-image-meta-property-";

/// The attributes a `x-image-meta-<name>` header may carry (Glance 15's
/// `IMAGE_META_HEADERS`, with `-` read as `_`).
const KNOWN: [&str; 21] = [
    "location",
    "size",
    "is_public",
    "disk_format",
    "container_format",
    "name",
    "status",
    "copy_from",
    "uri",
    "checksum",
    "created_at",
    "updated_at",
    "deleted_at",
    "min_ram",
    "min_disk",
    "owner",
    "store",
    "id",
    "protected",
    "deleted",
    "virtual_size",
];

/// What a v1 request's headers say about an image. `None` means "not
/// sent"; for nullable attributes `Some(None)` means "sent empty".
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct V1Meta {
    /// `x-image-meta-id`, a UUID.
    pub id: Option<String>,
    /// `x-image-meta-name`.
    pub name: Option<Option<String>>,
    /// `x-image-meta-disk_format`.
    pub disk_format: Option<DiskFormat>,
    /// `x-image-meta-container_format`.
    pub container_format: Option<ContainerFormat>,
    /// `x-image-meta-size`: what the data must measure.
    pub size: Option<u64>,
    /// `x-image-meta-checksum`: what the data's md5 must be.
    pub checksum: Option<String>,
    /// `x-image-meta-min_disk`.
    pub min_disk: Option<i64>,
    /// `x-image-meta-min_ram`.
    pub min_ram: Option<i64>,
    /// `x-image-meta-owner`.
    pub owner: Option<Option<String>>,
    /// `x-image-meta-is_public`; glanceclient's CLI sends `None` for "not
    /// given", which reads as absent.
    pub is_public: Option<bool>,
    /// `x-image-meta-protected`.
    pub protected: Option<bool>,
    /// `x-image-meta-status` (never settable; an update that changes it is refused).
    pub status: Option<String>,
    /// `x-image-meta-store`: where new data goes.
    pub store: Option<String>,
    /// `x-image-meta-location`, `-copy_from`, `-uri` or `x-glance-api-copy-from`:
    /// data somewhere else, which this service does not take through v1.
    pub external: Option<String>,
    /// `x-image-meta-property-*`, keys with `-` read as `_`.
    pub properties: BTreeMap<String, String>,
}

/// Reads the image metadata headers of `req`: 400 for an unknown
/// `x-image-meta-*` header or a value that does not parse.
pub(crate) fn parse(req: &ApiRequest) -> ApiResult<V1Meta> {
    let mut meta = V1Meta::default();
    for (name, raw) in &req.headers {
        let header = name.as_str();
        if header == "x-glance-api-copy-from" {
            meta.external = Some(decode(header, raw.as_bytes())?);
            continue;
        }
        if let Some(key) = header.strip_prefix(PROPERTY) {
            let key = decode(header, key.as_bytes())?.replace('-', "_");
            if key.is_empty() {
                return Err(ApiError::bad_request(format!("Bad header: {header}")));
            }
            meta.properties.insert(key, decode(header, raw.as_bytes())?);
            continue;
        }
        let Some(field) = header.strip_prefix(META) else {
            continue;
        };
        let field = field.replace('-', "_");
        if !KNOWN.contains(&field.as_str()) {
            return Err(ApiError::bad_request(format!("Bad header: {header}")));
        }
        let value = decode(header, raw.as_bytes())?;
        set(&mut meta, &field, value)?;
    }
    Ok(meta)
}

/// Percent-decodes a header value (or name part) into UTF-8 text.
fn decode(header: &str, raw: &[u8]) -> ApiResult<String> {
    String::from_utf8(percent_decode(raw).collect()).map_err(|_| {
        ApiError::bad_request(format!(
            "The value of header {header} is not UTF-8 text (after percent-decoding)."
        ))
    })
}

/// `value or None`, as Glance read every header.
fn nullable(value: String) -> Option<String> {
    Some(value).filter(|v| !v.is_empty())
}

fn invalid(param: &str, value: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid value '{value}' for parameter '{param}': {why}"
    ))
}

/// A non-negative integer attribute.
fn count(param: &str, value: &str) -> ApiResult<i64> {
    let n: i64 = value.trim().parse().map_err(|_| {
        invalid(
            param,
            value,
            &format!("Cannot convert image {param} '{value}' to an integer."),
        )
    })?;
    if n < 0 {
        return Err(invalid(param, value, "Cannot be a negative value."));
    }
    Ok(n)
}

/// A boolean attribute: `True`/`False` as glanceclient sends them, and the
/// other spellings oslo's `bool_from_string` reads.
pub(crate) fn boolean(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "y" | "yes" | "on" => Some(true),
        "false" | "0" | "f" | "n" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn flag(param: &str, value: &str) -> ApiResult<bool> {
    boolean(value).ok_or_else(|| invalid(param, value, "Expected True or False."))
}

fn set(meta: &mut V1Meta, field: &str, value: String) -> ApiResult<()> {
    match field {
        "id" => meta.id = Some(value),
        "name" => {
            if value.chars().count() > 255 {
                return Err(ApiError::bad_request(format!(
                    "Image name too long: {}",
                    value.chars().count()
                )));
            }
            meta.name = Some(nullable(value));
        }
        "disk_format" => {
            meta.disk_format = Some(DiskFormat::parse(&value).ok_or_else(|| {
                ApiError::bad_request(format!("Invalid disk format '{value}' for image."))
            })?)
        }
        "container_format" => {
            meta.container_format = Some(ContainerFormat::parse(&value).ok_or_else(|| {
                ApiError::bad_request(format!("Invalid container format '{value}' for image."))
            })?)
        }
        "size" => meta.size = Some(count("size", &value)? as u64),
        "min_ram" => meta.min_ram = Some(count("min_ram", &value)?),
        "min_disk" => meta.min_disk = Some(count("min_disk", &value)?),
        "virtual_size" => {
            if value != "None" && !value.is_empty() {
                count("virtual_size", &value)?;
            }
        }
        "checksum" => {
            if value.chars().count() > 32 {
                return Err(ApiError::bad_request(format!(
                    "Invalid checksum '{value}': can't exceed 32 characters"
                )));
            }
            meta.checksum = nullable(value);
        }
        "owner" => meta.owner = Some(nullable(value)),
        "is_public" => {
            meta.is_public = match value.as_str() {
                "" | "None" | "none" => None,
                v => Some(flag("is_public", v)?),
            }
        }
        "protected" => meta.protected = Some(flag("protected", &value)?),
        "deleted" => {
            flag("deleted", &value)?;
        }
        "status" => meta.status = Some(value),
        "store" => meta.store = nullable(value),
        "created_at" | "updated_at" | "deleted_at" => {
            if !value.is_empty() && value != "None" && Timestamp::parse(&value).is_none() {
                return Err(ApiError::bad_request(format!(
                    "Invalid time format for {field}."
                )));
            }
        }
        // location, copy_from, uri
        _ => meta.external = Some(value),
    }
    Ok(())
}

/// Bytes a header value keeps as they are: printable ASCII. Everything else
/// (controls, non-ASCII) is percent-encoded.
const VALUE_ESCAPES: &AsciiSet = CONTROLS;

/// Bytes a header-name part keeps: the token characters but `%`.
const NAME_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'%')
    .add(b'(')
    .add(b')')
    .add(b',')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'{')
    .add(b'}');

/// A header value for `text`, ASCII only.
fn encode_value(text: &str) -> String {
    utf8_percent_encode(text, VALUE_ESCAPES).to_string()
}

/// The `x-image-meta-*` headers of an image (Glance 15's
/// `image_meta_to_http_headers`: attributes that are null are left out),
/// and `ETag` with the checksum.
pub(crate) fn image_headers(img: &Image) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |name: &str, value: String| {
        out.push((format!("{META}{name}"), encode_value(&value)));
    };
    put("id", img.id.clone());
    if let Some(name) = &img.name {
        put("name", name.clone());
    }
    if let Some(f) = img.disk_format {
        put("disk_format", f.as_str().into());
    }
    if let Some(f) = img.container_format {
        put("container_format", f.as_str().into());
    }
    put("size", img.size.unwrap_or(0).to_string());
    if let Some(v) = img.virtual_size {
        put("virtual_size", v.to_string());
    }
    if let Some(c) = &img.checksum {
        put("checksum", c.clone());
    }
    put("status", img.status.as_str().into());
    put("is_public", view::python_bool(view::is_public(img)));
    put("protected", view::python_bool(img.protected));
    put("deleted", view::python_bool(view::is_deleted(img)));
    if let Some(owner) = &img.owner {
        put("owner", owner.clone());
    }
    put("min_ram", img.min_ram.to_string());
    put("min_disk", img.min_disk.to_string());
    put("created_at", view::timestamp(img.created_at));
    put("updated_at", view::timestamp(img.updated_at));
    if view::is_deleted(img) {
        put("deleted_at", view::timestamp(img.updated_at));
    }
    for (key, value) in img.visible_properties() {
        let key = utf8_percent_encode(key, NAME_ESCAPES).to_string();
        out.push((format!("{PROPERTY}{key}"), encode_value(value)));
    }
    if let Some(c) = &img.checksum {
        out.push(("etag".into(), encode_value(c)));
    }
    out
}

/// Whether `out` holds only what `http` accepts as header names and values
/// (a guard for the tests: a bad header would make the host drop them all).
#[cfg(test)]
fn all_valid(out: &[(String, String)]) -> bool {
    out.iter().all(|(k, v)| {
        http::HeaderName::from_bytes(k.as_bytes()).is_ok() && http::HeaderValue::from_str(v).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderName, HeaderValue, Method};

    fn req(headers: &[(&str, &[u8])]) -> ApiRequest<'static> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        ApiRequest::new(
            Method::POST,
            "/v1/images",
            map,
            "http://x",
            None,
            Box::new(&b""[..]),
        )
    }

    #[test]
    fn values_and_property_keys_are_percent_decoded() {
        let m = parse(&req(&[
            ("x-image-meta-name", b"My%20Test%20Image"),
            ("X-Image-Meta-Disk-Format", b"qcow2"),
            ("x-image-meta-property-os-distro", b"debian%2Fsid"),
            ("x-image-meta-property-my%20key", b"caf%C3%A9"),
            ("x-image-meta-is_public", b"True"),
            ("x-image-meta-size", b"11"),
            ("x-openstack-request-id", b"req-1"),
        ]))
        .unwrap();
        assert_eq!(m.name, Some(Some("My Test Image".to_string())));
        assert_eq!(m.disk_format, Some(DiskFormat::Qcow2));
        assert_eq!(m.properties["os_distro"], "debian/sid");
        assert_eq!(m.properties["my key"], "café");
        assert_eq!((m.is_public, m.size), (Some(true), Some(11)));
        let cli_default = parse(&req(&[("x-image-meta-is_public", b"None")])).unwrap();
        assert_eq!(cli_default.is_public, None, "glanceclient's 'not given'");
    }

    #[test]
    fn bad_headers_are_400s_that_say_why() {
        for (name, value, says) in [
            (
                "x-image-meta-foo",
                &b"1"[..],
                "Bad header: x-image-meta-foo",
            ),
            (
                "x-image-meta-size",
                b"abc",
                "Cannot convert image size 'abc'",
            ),
            ("x-image-meta-min_ram", b"-1", "Cannot be a negative value"),
            (
                "x-image-meta-disk_format",
                b"floppy",
                "Invalid disk format 'floppy'",
            ),
            (
                "x-image-meta-container_format",
                b"",
                "Invalid container format ''",
            ),
            ("x-image-meta-is_public", b"maybe", "Expected True or False"),
            (
                "x-image-meta-created_at",
                b"yesterday",
                "Invalid time format for created_at",
            ),
            ("x-image-meta-name", b"%FF", "not UTF-8"),
            ("x-image-meta-property-", b"x", "Bad header"),
        ] {
            let err = parse(&req(&[(name, value)])).unwrap_err();
            assert_eq!(err.status.as_u16(), 400, "{name}");
            assert!(err.message.contains(says), "{name}: {}", err.message);
        }
        let long = "x".repeat(256);
        let err = parse(&req(&[("x-image-meta-name", long.as_bytes())])).unwrap_err();
        assert_eq!(err.message, "Image name too long: 256");
    }

    #[test]
    fn an_image_goes_out_as_ascii_headers() {
        let mut img = Image::new(
            "8d3e5b5e-2f0a-4c4a-9a55-0c0f6f0b9c01".into(),
            Some("p1".into()),
            Timestamp(0),
        );
        img.name = Some("café\r\nbar".into());
        img.checksum = Some("5eb63bbbe01eeed093cb22bb8f5acdc3".into());
        img.properties.insert("os_distro".into(), "debian".into());
        img.properties.insert("my key".into(), "v".into());
        let out = image_headers(&img);
        assert!(all_valid(&out), "{out:?}");
        let get = |k: &str| out.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("x-image-meta-name"), Some("caf%C3%A9%0D%0Abar"));
        assert_eq!(get("x-image-meta-is_public"), Some("False"));
        assert_eq!(get("x-image-meta-size"), Some("0"));
        assert_eq!(
            get("x-image-meta-created_at"),
            Some("1970-01-01T00:00:00.000000")
        );
        assert_eq!(get("x-image-meta-property-os_distro"), Some("debian"));
        assert_eq!(get("x-image-meta-property-my%20key"), Some("v"));
        assert_eq!(get("etag"), img.checksum.as_deref());
        assert_eq!(get("x-image-meta-deleted_at"), None);
    }
}
