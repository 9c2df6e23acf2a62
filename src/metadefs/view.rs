//! The catalog's records as Glance shows them: absent attributes are left
//! out (not `null`), and links are paths (`/v2/metadefs/namespaces/{ns}`).

use serde_json::{json, Map, Value};

use crate::db::metadefs::{Association, Item, Namespace, ResourceType};

/// Link to a namespace.
pub fn namespace_href(name: &str) -> String {
    format!("/v2/metadefs/namespaces/{name}")
}

/// A namespace's own attributes, with its `self` and `schema` links.
pub fn namespace(ns: &Namespace) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("namespace".into(), json!(ns.namespace));
    if let Some(d) = &ns.display_name {
        m.insert("display_name".into(), json!(d));
    }
    if let Some(d) = &ns.description {
        m.insert("description".into(), json!(d));
    }
    m.insert("visibility".into(), json!(ns.visibility));
    m.insert("protected".into(), json!(ns.protected));
    if let Some(o) = &ns.owner {
        m.insert("owner".into(), json!(o));
    }
    m.insert("created_at".into(), json!(ns.created_at));
    m.insert("updated_at".into(), json!(ns.updated_at));
    m.insert("self".into(), json!(namespace_href(&ns.namespace)));
    m.insert("schema".into(), json!("/v2/schemas/metadefs/namespace"));
    m
}

/// A resource type association.
pub fn association(a: &Association) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(a.name));
    if let Some(p) = &a.prefix {
        m.insert("prefix".into(), json!(p));
    }
    if let Some(t) = &a.properties_target {
        m.insert("properties_target".into(), json!(t));
    }
    m.insert("created_at".into(), json!(a.created_at));
    m.insert("updated_at".into(), json!(a.updated_at));
    Value::Object(m)
}

/// A resource type.
pub fn resource_type(r: &ResourceType) -> Value {
    json!({"name": r.name, "created_at": r.created_at, "updated_at": r.updated_at})
}

/// An object of namespace `ns` (its document holds `description`,
/// `required`, `properties` when given); property names get `prefix`.
pub fn object(ns: &str, o: &Item, prefix: &str) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(o.name));
    if let Some(doc) = o.doc.as_object() {
        for key in ["description", "required", "properties"] {
            let Some(v) = doc.get(key) else { continue };
            let v = match (key, v) {
                ("required", Value::Array(names)) if !prefix.is_empty() => Value::Array(
                    names
                        .iter()
                        .map(|n| json!(format!("{prefix}{}", n.as_str().unwrap_or_default())))
                        .collect(),
                ),
                ("properties", Value::Object(props)) if !prefix.is_empty() => Value::Object(
                    props
                        .iter()
                        .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
                        .collect(),
                ),
                _ => v.clone(),
            };
            m.insert(key.into(), v);
        }
    }
    m.insert("created_at".into(), json!(o.created_at));
    m.insert("updated_at".into(), json!(o.updated_at));
    m.insert(
        "self".into(),
        json!(format!("{}/objects/{}", namespace_href(ns), o.name)),
    );
    m.insert("schema".into(), json!("/v2/schemas/metadefs/object"));
    Value::Object(m)
}

/// A property's definition, as it appears in a `properties` map (no name).
pub fn property_definition(p: &Item) -> Value {
    let mut doc = p.doc.as_object().cloned().unwrap_or_default();
    doc.remove("name");
    Value::Object(doc)
}

/// One property, named (`GET .../properties/{name}`).
pub fn property(p: &Item, name: &str) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    if let Value::Object(doc) = property_definition(p) {
        m.extend(doc);
    }
    Value::Object(m)
}

/// A tag with its times.
pub fn tag(t: &Item) -> Value {
    json!({"name": t.name, "created_at": t.created_at, "updated_at": t.updated_at})
}

/// The stored document of an object from a request body: the attributes
/// an object has besides its name.
pub fn object_doc(body: &Value) -> Value {
    let mut doc = Map::new();
    for key in ["description", "required", "properties"] {
        if let Some(v) = body.get(key) {
            doc.insert(key.into(), v.clone());
        }
    }
    Value::Object(doc)
}

/// The stored document of a property from a request body (its name is the
/// row's).
pub fn property_doc(body: &Value) -> Value {
    let mut doc = body.as_object().cloned().unwrap_or_default();
    doc.remove("name");
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_apply_to_object_properties_and_required_names() {
        let o = Item {
            id: 1,
            name: "o".into(),
            doc: json!({"required": ["a"], "properties": {"a": {"type": "string", "title": "A"}}}),
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        let v = object("ns", &o, "hw_");
        assert_eq!(v["required"], json!(["hw_a"]));
        assert!(v["properties"]["hw_a"].is_object());
        assert_eq!(v["self"], "/v2/metadefs/namespaces/ns/objects/o");
        assert!(
            v.get("description").is_none(),
            "absent attributes are left out"
        );
        let p = Item {
            doc: json!({"type": "string", "title": "P"}),
            ..o
        };
        assert_eq!(property(&p, "p")["name"], "p");
        assert!(property_definition(&p).get("name").is_none());
    }
}
