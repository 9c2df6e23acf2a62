//! The JSON schema documents served under `/v2/schemas/`.
//!
//! They are Glance 33's documents as it serves them with its default
//! configuration, plus the operator properties of Glance's stock
//! `schema-image.json` (`kernel_id`, `os_distro`, ... marked `"is_base": false`),
//! which glanceclient uses to build its command-line options.

/// This service's OpenAPI 3.1 description (`docs/openapi.yaml`), served at `/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../../docs/openapi.yaml");

/// The schema document for a path below `/v2/schemas/` (e.g. `image`,
/// `metadefs/namespace`), if there is one.
pub fn document(name: &str) -> Option<&'static str> {
    Some(match name {
        "image" => include_str!("schemas/image.json"),
        "images" => include_str!("schemas/images.json"),
        "member" => include_str!("schemas/member.json"),
        "members" => include_str!("schemas/members.json"),
        "task" => include_str!("schemas/task.json"),
        "tasks" => include_str!("schemas/tasks.json"),
        "metadefs/namespace" => include_str!("schemas/metadefs_namespace.json"),
        "metadefs/namespaces" => include_str!("schemas/metadefs_namespaces.json"),
        "metadefs/resource_type" => include_str!("schemas/metadefs_resource_type.json"),
        "metadefs/resource_types" => include_str!("schemas/metadefs_resource_types.json"),
        "metadefs/property" => include_str!("schemas/metadefs_property.json"),
        "metadefs/properties" => include_str!("schemas/metadefs_properties.json"),
        "metadefs/object" => include_str!("schemas/metadefs_object.json"),
        "metadefs/objects" => include_str!("schemas/metadefs_objects.json"),
        "metadefs/tag" => include_str!("schemas/metadefs_tag.json"),
        "metadefs/tags" => include_str!("schemas/metadefs_tags.json"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_document_is_json_with_glances_name() {
        for (path, name) in [
            ("image", "image"),
            ("images", "images"),
            ("member", "member"),
            ("members", "members"),
            ("task", "task"),
            ("tasks", "tasks"),
            ("metadefs/namespace", "namespace"),
            ("metadefs/namespaces", "namespaces"),
            ("metadefs/resource_type", "resource_type_association"),
            ("metadefs/resource_types", "resource_type_associations"),
            ("metadefs/property", "property"),
            ("metadefs/properties", "properties"),
            ("metadefs/object", "object"),
            ("metadefs/objects", "objects"),
            ("metadefs/tag", "tag"),
            ("metadefs/tags", "tags"),
        ] {
            let doc: serde_json::Value = serde_json::from_str(document(path).unwrap()).unwrap();
            assert_eq!(doc["name"], name, "{path}");
        }
        assert!(document("nope").is_none());
    }

    #[test]
    fn image_schema_marks_operator_properties() {
        let doc: serde_json::Value = serde_json::from_str(document("image").unwrap()).unwrap();
        assert_eq!(doc["properties"]["os_distro"]["is_base"], false);
        assert_eq!(doc["properties"]["status"]["readOnly"], true);
        assert_eq!(doc["additionalProperties"]["type"], "string");
    }
}
