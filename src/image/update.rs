//! Applies validated JSON-patch operations to an image with Glance's
//! per-operation rules (who may change what, and when).

use serde_json::Value;

use crate::auth::caller::Caller;
use crate::auth::policy::{Policy, Rule, Target};
use crate::error::{ApiError, ApiResult};
use crate::image::patch::{Dialect, OpKind, PatchOp};
use crate::image::schema;
use crate::image::{ContainerFormat, DiskFormat, Image, Status, Visibility};

/// The caller and rules an update is checked against.
pub struct UpdateContext<'a> {
    /// Who is asking.
    pub caller: &'a Caller,
    /// The authorization rules.
    pub policy: &'a Policy,
    /// The image as the rules see it.
    pub target: &'a Target,
    /// Which patch dialect the operations came in.
    pub dialect: Dialect,
}

impl UpdateContext<'_> {
    /// Glance's `update_property`: visibility changes need their own right,
    /// every change needs `modify_image`.
    fn may_update(&self, attr: &str, value: Option<&Value>) -> ApiResult<()> {
        if attr == "visibility" {
            match value.and_then(Value::as_str) {
                Some("public") => self.enforce(Rule::PublicizeImage)?,
                Some("community") => self.enforce(Rule::CommunitizeImage)?,
                _ => {}
            }
        }
        self.enforce(Rule::ModifyImage)
    }

    fn enforce(&self, rule: Rule) -> ApiResult<()> {
        self.policy.enforce(rule, self.caller, self.target)
    }
}

/// Applies `ops` in order; any failure leaves the caller to discard the image.
pub fn apply(img: &mut Image, ops: &[PatchOp], ctx: &UpdateContext) -> ApiResult<()> {
    for op in ops {
        let attr = op.attribute();
        if attr == "locations" {
            return Err(ApiError::forbidden(
                "It's not allowed to update locations if locations are invisible.",
            ));
        }
        if attr == "owner" && op.op != OpKind::Remove && !ctx.caller.is_admin() {
            return Err(ApiError::forbidden("Owner can't be updated by non admin."));
        }
        ctx.may_update(attr, op.value.as_ref())?;
        let base = schema::is_base(attr);
        match (op.op, &op.value) {
            (OpKind::Remove, _) => {
                if base {
                    return Err(ApiError::forbidden(format!(
                        "Property {attr} may not be removed."
                    )));
                }
                if img.properties.remove(attr).is_none() {
                    return Err(missing(attr));
                }
            }
            (OpKind::Replace, Some(v)) => {
                if base {
                    set_base(img, attr, v)?;
                } else if let Some(slot) = img.properties.get_mut(attr) {
                    *slot = string_value(v);
                } else {
                    return Err(missing(attr));
                }
            }
            (OpKind::Add, Some(v)) => {
                if ctx.dialect == Dialect::V20 && (base || img.properties.contains_key(attr)) {
                    return Err(ApiError::conflict(format!(
                        "Property {attr} already present."
                    )));
                }
                if base {
                    set_base(img, attr, v)?;
                } else {
                    img.properties.insert(attr.to_string(), string_value(v));
                }
            }
            (_, None) => return Err(ApiError::bad_request("Operation requires a value.")),
        }
    }
    Ok(())
}

fn missing(attr: &str) -> ApiError {
    ApiError::conflict(format!("Property {attr} does not exist."))
}

fn string_value(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn opt_string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Sets a base attribute; values were already checked against the schema.
pub fn set_base(img: &mut Image, attr: &str, v: &Value) -> ApiResult<()> {
    match attr {
        "name" => img.name = opt_string(v),
        "owner" => img.owner = opt_string(v),
        "visibility" => {
            img.visibility = v
                .as_str()
                .and_then(Visibility::parse)
                .ok_or_else(|| ApiError::bad_request("Invalid visibility"))?
        }
        "protected" => img.protected = v.as_bool().unwrap_or(false),
        "os_hidden" => img.os_hidden = v.as_bool().unwrap_or(false),
        "min_disk" => img.min_disk = v.as_i64().unwrap_or(0),
        "min_ram" => img.min_ram = v.as_i64().unwrap_or(0),
        "tags" => img.set_tags(
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_string)),
        ),
        "disk_format" | "container_format" => {
            if !matches!(img.status, Status::Queued | Status::Importing) {
                return Err(ApiError::forbidden(format!(
                    "Attribute {attr} can be only replaced for a queued image."
                )));
            }
            // validate_value has checked the name against the enum.
            let name = opt_string(v);
            if attr == "disk_format" {
                img.disk_format = name.as_deref().and_then(DiskFormat::parse);
            } else {
                img.container_format = name.as_deref().and_then(ContainerFormat::parse);
            }
        }
        other => {
            return Err(ApiError::forbidden(format!(
                "Attribute '{other}' is read-only."
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::patch;
    use crate::timestamp::Timestamp;
    use http::StatusCode;
    use serde_json::json;

    fn run(img: &mut Image, dialect: Dialect, ops: Value, roles: &[&str]) -> ApiResult<()> {
        let ops = patch::parse(dialect, &ops)?;
        let caller = Caller::new(Some("p1".into()), None, roles);
        let policy = Policy::default();
        let target = Target {
            owner: img.owner.clone(),
            member_id: None,
            visibility: Some(img.visibility.as_str().into()),
        };
        apply(
            img,
            &ops,
            &UpdateContext {
                caller: &caller,
                policy: &policy,
                target: &target,
                dialect,
            },
        )
    }

    fn image() -> Image {
        let mut i = Image::new("id".into(), Some("p1".into()), Timestamp(0));
        i.properties.insert("k".into(), "v".into());
        i
    }

    fn status(r: ApiResult<()>) -> StatusCode {
        r.unwrap_err().status
    }

    #[test]
    fn replace_add_remove() {
        let mut i = image();
        run(
            &mut i,
            Dialect::V21,
            json!([
                {"op": "replace", "path": "/name", "value": "n"},
                {"op": "add", "path": "/k2", "value": "v2"},
                {"op": "add", "path": "/k", "value": "v3"},
                {"op": "replace", "path": "/tags", "value": ["a", "a", "b"]},
                {"op": "remove", "path": "/k2"}
            ]),
            &["member"],
        )
        .unwrap();
        assert_eq!(i.name.as_deref(), Some("n"));
        assert_eq!(i.properties.get("k").map(String::as_str), Some("v3"));
        assert!(!i.properties.contains_key("k2"));
        assert_eq!(i.tags, vec!["a", "b"]);
    }

    #[test]
    fn glance_conflicts_and_refusals() {
        let m = &["member"];
        assert_eq!(
            status(run(
                &mut image(),
                Dialect::V21,
                json!([{"op": "replace", "path": "/nope", "value": "x"}]),
                m
            )),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(run(
                &mut image(),
                Dialect::V21,
                json!([{"op": "remove", "path": "/nope"}]),
                m
            )),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(run(
                &mut image(),
                Dialect::V21,
                json!([{"op": "remove", "path": "/name"}]),
                m
            )),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(run(
                &mut image(),
                Dialect::V20,
                json!([{"add": "/name", "value": "x"}]),
                m
            )),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(run(
                &mut image(),
                Dialect::V20,
                json!([{"add": "/k", "value": "x"}]),
                m
            )),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(run(
                &mut image(),
                Dialect::V21,
                json!([{"op": "replace", "path": "/owner", "value": "x"}]),
                m
            )),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(run(
                &mut image(),
                Dialect::V21,
                json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
                m
            )),
            StatusCode::FORBIDDEN
        );
        assert!(run(
            &mut image(),
            Dialect::V21,
            json!([{"op": "replace", "path": "/visibility", "value": "community"}]),
            m
        )
        .is_ok());
        assert!(run(
            &mut image(),
            Dialect::V21,
            json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
            &["admin"]
        )
        .is_ok());
        assert_eq!(
            status(run(
                &mut image(),
                Dialect::V21,
                json!([{"op": "replace", "path": "/name", "value": "x"}]),
                &["reader"]
            )),
            StatusCode::FORBIDDEN
        );
        let mut active = image();
        active.status = Status::Active;
        assert_eq!(
            status(run(
                &mut active,
                Dialect::V21,
                json!([{"op": "replace", "path": "/disk_format", "value": "raw"}]),
                m
            )),
            StatusCode::FORBIDDEN
        );
    }
}
