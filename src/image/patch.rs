//! Glance's two JSON-patch dialects for `PATCH /v2/images/{id}`.
//!
//! * `application/openstack-images-v2.1-json-patch`: RFC 6902 style,
//!   `{"op": "replace", "path": "/name", "value": "x"}`.
//! * `application/openstack-images-v2.0-json-patch`: the older draft-4 style
//!   Tempest still uses, where the op name is the key: `{"replace": "/name", "value": "x"}`.
//!
//! Parsing checks everything Glance checks before touching the image: shape,
//! operation names, JSON pointers and their depth, and that values fit the
//! schema. Applying the operations is [`crate::image::update`]'s job.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::image::schema;

/// Media type of the RFC 6902 dialect.
pub const MEDIA_TYPE_V21: &str = "application/openstack-images-v2.1-json-patch";
/// Media type of the draft-4 dialect.
pub const MEDIA_TYPE_V20: &str = "application/openstack-images-v2.0-json-patch";

/// Which dialect a patch was written in; `add` differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// draft-4: `add` on an existing attribute is a conflict.
    V20,
    /// RFC 6902: `add` creates or overwrites.
    V21,
}

/// A patch operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Create (or, in v2.1, overwrite).
    Add,
    /// Delete.
    Remove,
    /// Overwrite an existing attribute.
    Replace,
}

impl OpKind {
    const NAMES: [(&'static str, OpKind); 3] = [
        ("add", OpKind::Add),
        ("remove", OpKind::Remove),
        ("replace", OpKind::Replace),
    ];

    fn parse(s: &str) -> Option<Self> {
        Self::NAMES.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }

    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("", |(n, _)| n)
    }
}

/// One validated change.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    /// What to do.
    pub op: OpKind,
    /// The decoded JSON pointer (one segment, or two for `/locations/N`).
    pub path: Vec<String>,
    /// The new value (absent for `remove`).
    pub value: Option<Value>,
}

impl PatchOp {
    /// The attribute the operation touches.
    pub fn attribute(&self) -> &str {
        self.path.first().map_or("", String::as_str)
    }
}

/// The `Accept-Patch` header sent with a 415.
pub fn accept_patch() -> String {
    format!("{MEDIA_TYPE_V20}, {MEDIA_TYPE_V21}")
}

/// Picks the dialect from a `Content-Type` header, or answers 415.
pub fn dialect_for(content_type: Option<&str>) -> ApiResult<Dialect> {
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some(MEDIA_TYPE_V21) => Ok(Dialect::V21),
        Some(MEDIA_TYPE_V20) => Ok(Dialect::V20),
        _ => Err(ApiError::unsupported_media_type(format!(
            "Image PATCH expects Content-Type one of: {}",
            accept_patch()
        ))
        .with_header("Accept-Patch", accept_patch())),
    }
}

/// Parses and validates a patch document.
pub fn parse(dialect: Dialect, body: &Value) -> ApiResult<Vec<PatchOp>> {
    let Value::Array(raw_ops) = body else {
        return Err(ApiError::bad_request(
            "Request body must be a JSON array of operation objects.",
        ));
    };
    raw_ops.iter().map(|raw| parse_op(dialect, raw)).collect()
}

fn parse_op(dialect: Dialect, raw: &Value) -> ApiResult<PatchOp> {
    let Value::Object(obj) = raw else {
        return Err(ApiError::bad_request("Operations must be JSON objects."));
    };
    let (op, pointer) = match dialect {
        Dialect::V21 => {
            let op = match obj.get("op") {
                None => {
                    return Err(ApiError::bad_request(
                        "Unable to find `op` in JSON Schema change. It must be one of the \
                         following: add, remove, replace.",
                    ))
                }
                Some(v) => v.as_str().and_then(OpKind::parse).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Invalid operation: `{}`. It must be one of the following: add, \
                         remove, replace.",
                        v.as_str().map_or_else(|| v.to_string(), str::to_string)
                    ))
                })?,
            };
            let path = obj.get("path").ok_or_else(|| {
                ApiError::bad_request("Unable to find 'path' in JSON Schema change")
            })?;
            (op, path)
        }
        Dialect::V20 => {
            let mut found = None;
            for (name, kind) in OpKind::NAMES {
                if let Some(p) = obj.get(name) {
                    if found.is_some() {
                        return Err(ApiError::bad_request(
                            "Operation objects must contain only one member named \"add\", \
                             \"remove\", or \"replace\".",
                        ));
                    }
                    found = Some((kind, p));
                }
            }
            found.ok_or_else(|| {
                ApiError::bad_request(
                    "Operation objects must contain exactly one member named \"add\", \
                     \"remove\", or \"replace\".",
                )
            })?
        }
    };
    let pointer = pointer
        .as_str()
        .ok_or_else(|| ApiError::bad_request("The JSON pointer of a change must be a string."))?;
    let path = decode_pointer(pointer)?;
    check_depth(op, &path)?;
    let value = match op {
        OpKind::Remove => None,
        _ => Some(obj.get("value").cloned().ok_or_else(|| {
            ApiError::bad_request(format!(
                "Operation \"{}\" requires a member named \"value\".",
                op.name()
            ))
        })?),
    };
    let change = PatchOp { op, path, value };
    validate_change(&change)?;
    Ok(change)
}

/// Decodes a JSON pointer the restricted way Glance accepts them.
fn decode_pointer(pointer: &str) -> ApiResult<Vec<String>> {
    let bad = |why: &str| ApiError::bad_request(format!("Pointer `{pointer}` {why}"));
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(bad("does not start with \"/\"."));
    };
    if pointer.len() > 1 && pointer.ends_with('/') {
        return Err(bad("end with \"/\"."));
    }
    if rest.split('/').any(|seg| seg.trim().is_empty()) {
        return Err(bad("contains adjacent \"/\"."));
    }
    let mut chars = pointer.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.peek(), Some('0') | Some('1')) {
            return Err(bad(
                "contains \"~\" not part of a recognized escape sequence.",
            ));
        }
    }
    Ok(rest
        .split('/')
        .map(|seg| seg.replace("~1", "/").replace("~0", "~").trim().to_string())
        .collect())
}

fn check_depth(op: OpKind, path: &[String]) -> ApiResult<()> {
    let allowed = match (path.first().map(String::as_str), op) {
        (Some("locations"), OpKind::Add | OpKind::Remove) => 2,
        _ => 1,
    };
    if path.len() != allowed {
        return Err(ApiError::bad_request(format!(
            "Invalid JSON pointer for this resource: '/{}'",
            path.join("/")
        )));
    }
    Ok(())
}

fn validate_change(change: &PatchOp) -> ApiResult<()> {
    let attr = change.attribute();
    schema::check_patchable(attr)?;
    match (&change.value, change.path.len()) {
        (Some(v), 1) if attr != "locations" => schema::validate_value(attr, v),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use serde_json::json;

    fn status(r: ApiResult<Vec<PatchOp>>) -> StatusCode {
        r.unwrap_err().status
    }

    #[test]
    fn picks_dialect_from_content_type() {
        assert_eq!(dialect_for(Some(MEDIA_TYPE_V21)).unwrap(), Dialect::V21);
        assert_eq!(
            dialect_for(Some(
                "application/openstack-images-v2.0-json-patch; charset=utf-8"
            ))
            .unwrap(),
            Dialect::V20
        );
        let err = dialect_for(Some("application/json")).unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(err.headers[0].0, "Accept-Patch");
        assert!(dialect_for(None).is_err());
    }

    #[test]
    fn parses_both_dialects() {
        let v21 = parse(
            Dialect::V21,
            &json!([{"op": "replace", "path": "/name", "value": "x"}, {"op": "remove", "path": "/k"}]),
        )
        .unwrap();
        assert_eq!(v21[0].op, OpKind::Replace);
        assert_eq!(v21[0].path, vec!["name"]);
        assert_eq!(v21[1].value, None);
        let v20 = parse(Dialect::V20, &json!([{"add": "/a~1b", "value": "v"}])).unwrap();
        assert_eq!(v20[0].op, OpKind::Add);
        assert_eq!(v20[0].path, vec!["a/b"]);
    }

    #[test]
    fn rejects_bad_documents() {
        assert_eq!(
            status(parse(Dialect::V21, &json!({"op": "add"}))),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(parse(Dialect::V21, &json!([1]))),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(parse(
                Dialect::V21,
                &json!([{"op": "move", "path": "/a", "from": "/b"}])
            )),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(parse(Dialect::V21, &json!([{"path": "/a"}]))),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(parse(Dialect::V21, &json!([{"op": "add", "path": "/a"}]))),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(parse(
                Dialect::V20,
                &json!([{"add": "/a", "remove": "/a", "value": 1}])
            )),
            StatusCode::BAD_REQUEST
        );
        for p in ["name", "/a//b", "/a/", "/a~2", "/tags/-", "/a/b"] {
            assert_eq!(
                status(parse(
                    Dialect::V21,
                    &json!([{"op": "add", "path": p, "value": "v"}])
                )),
                StatusCode::BAD_REQUEST,
                "{p}"
            );
        }
    }

    #[test]
    fn read_only_and_reserved_paths_are_forbidden() {
        for p in [
            "/status",
            "/id",
            "/checksum",
            "/deleted",
            "/os_glance_x",
            "/self",
        ] {
            assert_eq!(
                status(parse(
                    Dialect::V21,
                    &json!([{"op": "replace", "path": p, "value": "v"}])
                )),
                StatusCode::FORBIDDEN,
                "{p}"
            );
        }
    }

    #[test]
    fn values_are_checked_against_the_schema() {
        assert_eq!(
            status(parse(
                Dialect::V21,
                &json!([{"op": "replace", "path": "/disk_format", "value": "x"}])
            )),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(parse(
                Dialect::V21,
                &json!([{"op": "add", "path": "/custom", "value": 5}])
            )),
            StatusCode::BAD_REQUEST
        );
        assert!(parse(
            Dialect::V21,
            &json!([{"op": "add", "path": "/locations/-", "value": {}}])
        )
        .is_ok());
    }
}
