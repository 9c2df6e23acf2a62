//! The version document clients use to discover the v2 endpoint (and the
//! deprecated v1 one, listed last as Glance 15 listed it).

use serde_json::{json, Value};

/// Version ids Glance 33 lists on a single-store deployment without an image
/// cache, in Glance's order, with their status.
const SINGLE_STORE: [(&str, &str); 11] = [
    ("v2.15", "SUPPORTED"),
    ("v2.9", "SUPPORTED"),
    ("v2.17", "CURRENT"),
    ("v2.7", "SUPPORTED"),
    ("v2.6", "SUPPORTED"),
    ("v2.5", "SUPPORTED"),
    ("v2.4", "SUPPORTED"),
    ("v2.3", "SUPPORTED"),
    ("v2.2", "SUPPORTED"),
    ("v2.1", "SUPPORTED"),
    ("v2.0", "SUPPORTED"),
];

/// Extra versions Glance lists when several stores are configured.
const MULTI_STORE: [&str; 5] = ["v2.13", "v2.12", "v2.11", "v2.10", "v2.8"];

/// The v1 versions, after every v2 one (Glance 15 with `enable_v1_api`).
const V1: [(&str, &str); 2] = [("v1.1", "DEPRECATED"), ("v1.0", "DEPRECATED")];

/// The `{"versions": [...]}` document; every v2 entry links to
/// `<base_url>/v2/`, every v1 entry to `<base_url>/v1/`.
pub fn document(base_url: &str, multi_store: bool) -> Value {
    let base = base_url.trim_end_matches('/');
    let href = format!("{base}/v2/");
    let entry = |id: &str, status: &str| json!({"id": id, "status": status, "links": [{"rel": "self", "href": href}]});
    let mut versions: Vec<Value> = Vec::new();
    for (i, (id, status)) in SINGLE_STORE.iter().enumerate() {
        versions.push(entry(id, status));
        // Glance puts the multistore versions right after v2.15.
        if i == 0 && multi_store {
            versions.extend(MULTI_STORE.iter().map(|id| entry(id, "SUPPORTED")));
        }
    }
    let v1_href = format!("{base}/v1/");
    versions.extend(V1.iter().map(|(id, status)| {
        json!({"id": id, "status": status, "links": [{"rel": "self", "href": v1_href}]})
    }));
    json!({ "versions": versions })
}

/// The document of a site with an image cache: Glance then leads with
/// v2.18 (CURRENT), 2.17, 2.16, 2.15 and 2.14, and v2.17 is no longer CURRENT.
pub fn with_cache(mut doc: Value) -> Value {
    let Some(list) = doc["versions"].as_array_mut() else {
        return doc;
    };
    let Some(href) = list
        .first()
        .and_then(|e| e["links"][0]["href"].as_str())
        .map(str::to_string)
    else {
        return doc;
    };
    list.retain(|e| !matches!(e["id"].as_str(), Some("v2.15" | "v2.17")));
    let lead = [
        ("v2.18", "CURRENT"),
        ("v2.17", "SUPPORTED"),
        ("v2.16", "SUPPORTED"),
        ("v2.15", "SUPPORTED"),
        ("v2.14", "SUPPORTED"),
    ];
    for (i, (id, status)) in lead.iter().enumerate() {
        list.insert(
            i,
            json!({"id": id, "status": status, "links": [{"rel": "self", "href": href}]}),
        );
    }
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cache_adds_2_14_to_2_18_with_2_18_current() {
        let doc = with_cache(document("http://h", false));
        let ids: Vec<&str> = doc["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "v2.18", "v2.17", "v2.16", "v2.15", "v2.14", "v2.9", "v2.7", "v2.6", "v2.5",
                "v2.4", "v2.3", "v2.2", "v2.1", "v2.0", "v1.1", "v1.0"
            ]
        );
        let current: Vec<_> = doc["versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["status"] == "CURRENT")
            .collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0]["id"], "v2.18");
    }

    use super::*;

    #[test]
    fn lists_v2_17_as_current_with_absolute_links() {
        let doc = document("http://h:3000/", false);
        let v = doc["versions"].as_array().unwrap();
        assert_eq!(v.len(), 13);
        let current: Vec<_> = v.iter().filter(|e| e["status"] == "CURRENT").collect();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0]["id"], "v2.17");
        assert_eq!(v[0]["links"][0]["href"], "http://h:3000/v2/");
        let v1: Vec<_> = v[11..]
            .iter()
            .map(|e| (e["id"].clone(), e["status"].clone()))
            .collect();
        assert_eq!(
            v1,
            [
                (json!("v1.1"), json!("DEPRECATED")),
                (json!("v1.0"), json!("DEPRECATED"))
            ]
        );
        assert_eq!(v[12]["links"][0]["href"], "http://h:3000/v1/");
    }

    #[test]
    fn multi_store_adds_versions() {
        let doc = document("http://h", true);
        assert_eq!(doc["versions"].as_array().unwrap().len(), 18);
    }
}
