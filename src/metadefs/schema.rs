//! Request bodies checked against the metadefs JSON schemas this service
//! serves (`/v2/schemas/metadefs/*`, the same documents), as Glance checks
//! them with `jsonschema` before it looks at a body.
//!
//! Only the keywords those documents use are implemented: `type` (a name or a
//! list of names), `enum`, `properties`, `additionalProperties`, `required`,
//! `items`, `minItems`, `uniqueItems`, `maxLength`, `minimum`, `allOf` and
//! `$ref` to `#/definitions/...`. Anything else in a schema is ignored, as a
//! validator ignores unknown keywords.

use serde_json::Value;

use crate::api::discovery::schemas;

/// Which served document a body must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doc {
    /// `metadefs/namespace`.
    Namespace,
    /// `metadefs/object`.
    Object,
    /// `metadefs/property`.
    Property,
    /// `metadefs/tag`.
    Tag,
    /// `metadefs/tags` (the multiple-create body).
    Tags,
    /// `metadefs/resource_type` (an association).
    ResourceType,
}

impl Doc {
    fn path(self) -> &'static str {
        match self {
            Doc::Namespace => "metadefs/namespace",
            Doc::Object => "metadefs/object",
            Doc::Property => "metadefs/property",
            Doc::Tag => "metadefs/tag",
            Doc::Tags => "metadefs/tags",
            Doc::ResourceType => "metadefs/resource_type",
        }
    }
}

/// Checks `body` against document `doc`: `Err` names the first mismatch, in
/// Glance's words ("Provided object does not match schema 'property': ...").
pub fn validate(doc: Doc, body: &Value) -> Result<(), String> {
    let schema: Value = schemas::document(doc.path())
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let name = schema["name"].as_str().unwrap_or("").to_string();
    // The documents leave the top-level type out; a body is an object.
    if !body.is_object() {
        return Err(format!(
            "Provided object does not match schema '{name}': {} is not of type 'object'",
            describe(body)
        ));
    }
    check(&schema, &schema, body, "", 0)
        .map_err(|why| format!("Provided object does not match schema '{name}': {why}"))
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => {
            v.as_i64().is_some()
                || v.as_u64().is_some()
                || v.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" (at {path})")
    }
}

/// Checks `v` against `schema` (`root` holds the definitions).
fn check(root: &Value, schema: &Value, v: &Value, path: &str, depth: u8) -> Result<(), String> {
    if depth > 32 {
        return Err("the document nests too deeply".into());
    }
    let Some(s) = schema.as_object() else {
        return Ok(());
    };
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix("#/definitions/")
            .and_then(|name| root["definitions"].get(name))
            .unwrap_or(&Value::Null);
        check(root, target, v, path, depth + 1)?;
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check(root, sub, v, path, depth + 1)?;
        }
    }
    match s.get("type") {
        Some(Value::String(t)) if !type_matches(t, v) => {
            return Err(format!("{} is not of type '{t}'{}", describe(v), at(path)));
        }
        Some(Value::Array(ts))
            if !ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(t, v)) =>
        {
            return Err(format!(
                "{} is not of type {}{}",
                describe(v),
                Value::Array(ts.clone()),
                at(path)
            ));
        }
        _ => {}
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            return Err(format!(
                "{} is not one of {}{}",
                describe(v),
                Value::Array(allowed.clone()),
                at(path)
            ));
        }
    }
    if let (Some(max), Some(text)) = (s.get("maxLength").and_then(Value::as_u64), v.as_str()) {
        if text.chars().count() as u64 > max {
            return Err(format!("{} is too long{}", describe(v), at(path)));
        }
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < min {
            return Err(format!("{n} is less than the minimum of {min}{}", at(path)));
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
            if (items.len() as u64) < min {
                return Err(format!("{} is too short{}", describe(v), at(path)));
            }
        }
        if s.get("uniqueItems") == Some(&Value::Bool(true)) {
            for (i, a) in items.iter().enumerate() {
                if items[..i].contains(a) {
                    return Err(format!(
                        "{} has non-unique elements{}",
                        describe(v),
                        at(path)
                    ));
                }
            }
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(root, item_schema, item, &format!("{path}/{i}"), depth + 1)?;
            }
        }
    }
    if let Some(obj) = v.as_object() {
        if let Some(required) = s.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(name) {
                    return Err(format!("'{name}' is a required property{}", at(path)));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (key, value) in obj {
            let sub_path = format!("{path}/{key}");
            match props.and_then(|p| p.get(key)) {
                Some(sub) => check(root, sub, value, &sub_path, depth + 1)?,
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!(
                            "Additional properties are not allowed ('{key}' was unexpected){}",
                            at(path)
                        ));
                    }
                    Some(extra @ Value::Object(_)) => {
                        check(root, extra, value, &sub_path, depth + 1)?
                    }
                    _ => {}
                },
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn properties_need_name_title_and_a_known_type() {
        assert!(validate(
            Doc::Property,
            &json!({"name": "p", "title": "P", "type": "string"})
        )
        .is_ok());
        let err = validate(Doc::Property, &json!({"name": "p", "title": "P"})).unwrap_err();
        assert!(err.contains("'type' is a required property"), "{err}");
        assert!(
            err.starts_with("Provided object does not match schema 'property'"),
            "{err}"
        );
        let err = validate(
            Doc::Property,
            &json!({"name": "p", "title": "P", "type": "text"}),
        )
        .unwrap_err();
        assert!(err.contains("is not one of"), "{err}");
        let err = validate(
            Doc::Property,
            &json!({"name": "p", "title": "P", "type": "string", "x": 1}),
        )
        .unwrap_err();
        assert!(err.contains("'x' was unexpected"), "{err}");
        let err = validate(
            Doc::Property,
            &json!({"name": "p", "title": "P", "type": "string", "maxLength": -1}),
        )
        .unwrap_err();
        assert!(err.contains("minimum"), "{err}");
        let err = validate(
            Doc::Property,
            &json!({"name": "p", "title": "P", "type": "array", "required": []}),
        )
        .unwrap_err();
        assert!(err.contains("too short"), "{err}");
    }

    #[test]
    fn namespaces_check_nested_definitions() {
        assert!(validate(
            Doc::Namespace,
            &json!({"namespace": "n", "visibility": "public"})
        )
        .is_ok());
        assert!(validate(
            Doc::Namespace,
            &json!({"namespace": "n", "visibility": "shared"})
        )
        .is_err());
        assert!(validate(Doc::Namespace, &json!({"display_name": "n"})).is_err());
        assert!(validate(Doc::Namespace, &json!({"namespace": "x".repeat(81)})).is_err());
        let bad_prop = json!({"namespace": "n", "properties": {"p": {"title": "P"}}});
        let err = validate(Doc::Namespace, &bad_prop).unwrap_err();
        assert!(
            err.contains("'type' is a required property (at /properties/p)"),
            "{err}"
        );
        let nested = json!({"namespace": "n", "objects": [{"name": "o", "properties": {"p": {"type": "integer", "title": "P", "minimum": 1}}}], "tags": [{"name": "t"}]});
        assert!(validate(Doc::Namespace, &nested).is_ok());
        assert!(validate(Doc::Namespace, &json!([1])).is_err());
    }

    #[test]
    fn tags_and_associations() {
        assert!(validate(Doc::Tags, &json!({"tags": [{"name": "a"}]})).is_ok());
        assert!(validate(Doc::Tag, &json!({"name": 1})).is_err());
        assert!(validate(
            Doc::ResourceType,
            &json!({"name": "OS::Glance::Image", "prefix": "hw_"})
        )
        .is_ok());
        assert!(validate(Doc::ResourceType, &json!({"prefix": "hw_"})).is_err());
    }
}
