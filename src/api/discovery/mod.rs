//! Discovery documents: the version document (`/`, `/versions`) and the JSON
//! schemas (`/v2/schemas/...`), plus the answer for every other path.

mod schemas;
mod versions;

use http::{Method, StatusCode};

use crate::api::{finish, segments_after, ApiRequest, ApiResponse};
use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::ports::Ports;

/// Handles one request to the discovery (schemas) component.
pub fn handle(ports: &Ports, mut req: ApiRequest) -> ApiResponse {
    let result = route(ports, &mut req);
    finish(&req, result)
}

fn route(ports: &Ports, req: &mut ApiRequest) -> ApiResult<ApiResponse> {
    if req.path == "/openapi.yaml" {
        if req.method != Method::GET {
            return Err(ApiError::method_not_allowed(&["GET"]));
        }
        let mut resp =
            ApiResponse::raw_json(StatusCode::OK, schemas::OPENAPI_YAML.as_bytes().to_vec());
        resp.headers = vec![("content-type".into(), "application/yaml".into())];
        return Ok(resp);
    }
    let first = req
        .path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    if first == "versions" {
        return versions_doc(ports, req, StatusCode::OK);
    }
    if !is_v2_prefix(first) {
        // Glance answers 300 with the version list for any path whose first
        // segment is not an accepted version: `/`, `/v1/...`, `/v3`.
        return versions_doc(ports, req, StatusCode::MULTIPLE_CHOICES);
    }
    if let Some(segs) = segments_after(&req.path, "/v2/schemas") {
        let name = segs.join("/");
        let doc = schemas::document(&name)
            .ok_or_else(|| ApiError::not_found("The resource could not be found."))?;
        if req.method != Method::GET {
            return Err(ApiError::method_not_allowed(&["GET"]));
        }
        auth::identify(ports, req)?;
        req.reject_body()?;
        return Ok(ApiResponse::raw_json(
            StatusCode::OK,
            doc.as_bytes().to_vec(),
        ));
    }
    Err(ApiError::not_found("The resource could not be found."))
}

/// `v2`, `v2.0` … `v2.17`: the URL prefixes Glance maps to the v2 API.
fn is_v2_prefix(segment: &str) -> bool {
    segment == "v2"
        || segment
            .strip_prefix("v2.")
            .is_some_and(|minor| minor.parse::<u8>().is_ok_and(|m| m <= 17))
}

fn versions_doc(ports: &Ports, req: &mut ApiRequest, status: StatusCode) -> ApiResult<ApiResponse> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(ApiError::method_not_allowed(&["GET", "HEAD"]));
    }
    let base = ports
        .vars
        .get("public_endpoint")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| req.base_url.clone());
    Ok(ApiResponse::json(status, &versions::document(&base, false)))
}
