//! Discovery documents: the version document (`/`, `/versions`) and the JSON
//! schemas (`/v2/schemas/...`), the health check (`/healthcheck`), plus the
//! answer for every other path.

pub(crate) mod schemas;
mod versions;

use http::{Method, StatusCode};

use crate::api::routes::{self, Params, Route};
use crate::api::{serve, ApiRequest, ApiResponse};
use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::ports::Ports;
use crate::settings::{self, Var};

/// A handler of this service.
type Handler = fn(&Ports<'_>, &mut ApiRequest<'_>, &Params) -> ApiResult<ApiResponse>;

/// Every route of the discovery component. Paths that match none get the
/// version document (300) unless they start with a v2 prefix (404).
static ROUTES: &[Route<Handler>] = &[
    Route {
        path: "/openapi.yaml",
        methods: &[("GET", openapi)],
    },
    Route {
        path: "/v2/schemas/{name}",
        methods: &[("GET", schema)],
    },
    Route {
        path: "/v2/schemas/metadefs/{name}",
        methods: &[("GET", schema)],
    },
];

/// Handles one request to the discovery (schemas) component.
pub fn handle(ports: &Ports, mut req: ApiRequest) -> ApiResponse {
    if is_healthcheck(&req.path) {
        return serve(ports, req, |req| ("/healthcheck", Ok(healthcheck(req))));
    }
    if !crate::api::negotiated(ports, &mut req) {
        return choices(ports, req);
    }
    serve(ports, req, |req| match routes::find(ROUTES, req) {
        Ok(m) => (m.path, (m.handler)(ports, req, &m.params)),
        Err(e) if e.status != StatusCode::NOT_FOUND => ("-", Err(e)),
        Err(_) => ("/...", fallback(ports, req)),
    })
}

/// The version choices (300) for a request whose version is not served.
pub(crate) fn choices(ports: &Ports, req: ApiRequest) -> ApiResponse {
    serve(ports, req, |req| {
        (
            "/...",
            versions_doc(ports, req, StatusCode::MULTIPLE_CHOICES),
        )
    })
}

/// `/healthcheck` and below it (oslo.middleware's healthcheck app, which
/// Glance mounts beside the API, before version negotiation and auth).
fn is_healthcheck(path: &str) -> bool {
    path == "/healthcheck" || path.starts_with("/healthcheck/")
}

/// Any method: 200 `OK` as text; HEAD: 204 (oslo.middleware's answers).
fn healthcheck(req: &ApiRequest) -> ApiResponse {
    if req.method == Method::HEAD {
        return ApiResponse::empty(StatusCode::NO_CONTENT);
    }
    let mut resp = ApiResponse::raw_json(StatusCode::OK, b"OK".to_vec());
    resp.headers = vec![("content-type".into(), "text/plain; charset=UTF-8".into())];
    resp
}

/// `GET /openapi.yaml`: the service's OpenAPI document.
fn openapi(_: &Ports, _: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    let mut resp = ApiResponse::raw_json(StatusCode::OK, schemas::OPENAPI_YAML.as_bytes().to_vec());
    resp.headers = vec![("content-type".into(), "application/yaml".into())];
    Ok(resp)
}

/// `GET /v2/schemas/{name}` and `/v2/schemas/metadefs/{name}`.
fn schema(ports: &Ports, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let name = req
        .path
        .strip_prefix("/v2/schemas/")
        .filter(|_| p.get("name").is_some())
        .unwrap_or_default();
    let doc = schemas::document(name).ok_or_else(ApiError::no_resource)?;
    auth::identify(ports, req)?;
    req.reject_body()?;
    Ok(ApiResponse::raw_json(
        StatusCode::OK,
        doc.as_bytes().to_vec(),
    ))
}

/// Every other path: `/versions` (200) and any path whose first segment is
/// not an accepted version (300, as Glance: `/`, `/v3`, `/v2.12` on one
/// store) get the version document; other v1 and v2 paths are 404 — after
/// the caller is identified, as Glance routes after the token check (401
/// without a token under Keystone). Accepted `/v2.N` prefixes were made
/// `/v2` by negotiation.
fn fallback(ports: &Ports, req: &mut ApiRequest) -> ApiResult<ApiResponse> {
    let first = req
        .path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    if first == "versions" {
        return versions_doc(ports, req, StatusCode::OK);
    }
    if first != "v2" && !is_v1_prefix(first) {
        return versions_doc(ports, req, StatusCode::MULTIPLE_CHOICES);
    }
    if first == "v2" {
        auth::identify(ports, req)?;
    }
    Err(ApiError::no_resource())
}

/// `v1`, `v1.0`, `v1.1`: the URL prefixes Glance 15 mapped to the v1 API.
fn is_v1_prefix(segment: &str) -> bool {
    matches!(segment, "v1" | "v1.0" | "v1.1")
}

fn versions_doc(ports: &Ports, req: &mut ApiRequest, status: StatusCode) -> ApiResult<ApiResponse> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(ApiError::method_not_allowed(&["GET", "HEAD"]));
    }
    let mut base = settings::value(ports.vars, Var::PublicEndpoint);
    if base.is_empty() {
        base = req.base_url.clone();
    }
    let (multi_store, cache) = crate::api::negotiate::deployment(ports.vars);
    let mut doc = versions::document(&base, multi_store);
    if cache {
        doc = versions::with_cache(doc);
    }
    Ok(ApiResponse::json(status, &doc))
}

#[cfg(test)]
mod tests {
    use super::handle;
    use crate::api::harness::Harness;

    #[test]
    fn versions_schemas_and_the_rest() {
        let h = Harness::new();
        let v = h.call(handle, "GET", "/versions", &[], b"").expect(200);
        assert!(v["versions"].as_array().is_some_and(|a| !a.is_empty()));
        h.call(handle, "GET", "/", &[], b"").expect(300);
        h.call(handle, "GET", "/v1/nothing", &[], b"").error(404);
        h.call(handle, "GET", "/v1", &[], b"").error(404);
        h.call(handle, "GET", "/v3/images", &[], b"").expect(300);
        h.call(handle, "GET", "/v2/nothing", &[], b"").error(404);
        h.call(handle, "GET", "/v2.1/nothing", &[], b"").error(404);
        h.call(handle, "GET", "/v2.12/nothing", &[], b"")
            .expect(300);
        let ok = h.call(handle, "GET", "/healthcheck", &[], b"");
        assert_eq!(
            (ok.status, ok.header("content-type")),
            (200, Some("text/plain; charset=UTF-8"))
        );
        assert_eq!(ok.body, b"OK");
        assert_eq!(h.call(handle, "HEAD", "/healthcheck", &[], b"").status, 204);
        let s = h
            .call(handle, "GET", "/v2.17/schemas/task", &[], b"")
            .expect(200);
        assert_eq!(s["name"], "task");
        let s = h
            .call(handle, "GET", "/v2/schemas/metadefs/namespace", &[], b"")
            .expect(200);
        assert_eq!(s["name"], "namespace");
        h.call(handle, "GET", "/v2/schemas/nope", &[], b"")
            .error(404);
        let r = h.call(handle, "POST", "/v2/schemas/image", &[], b"");
        assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    }
}
