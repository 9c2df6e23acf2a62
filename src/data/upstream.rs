//! Edge site mode: images that live at an upstream (central) Glance.
//!
//! With `upstream_glance_url` set, an image id unknown here is looked up at
//! the upstream with the caller's own credentials (its Keystone token, or in
//! noauth mode the identity headers), so what the upstream shows the caller
//! is what the edge shows it — 404 there is 404 here. What the upstream
//! showed is kept per caller (a hash of the token, or the noauth identity)
//! and image for `upstream_ttl` seconds, then asked again: an image deleted
//! or hidden centrally stops being served at the edge within that time. Its
//! data is fetched from the upstream's `/file`, with the same credentials,
//! and served through the image cache.

use std::rc::Rc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::ApiRequest;
use crate::auth::caller::Caller;
use crate::data::blob::s3::stream_body;
use crate::data::blob::{BlobError, ByteRange, ChunkStream};
use crate::db::cache::CacheRepo;
use crate::error::{ApiError, ApiResult};
use crate::ports::outbound::{send_idempotent, HttpClient, OutRequest};
use crate::ports::Database;
use crate::timestamp::Timestamp;

/// Largest image record accepted from the upstream.
const RECORD_LIMIT: u64 = 4 << 20;

/// Who asks the upstream, and how it is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// What the stored views are kept under (never the token itself).
    pub key: String,
    /// Headers sent upstream.
    pub headers: Vec<(String, String)>,
}

impl Credentials {
    /// The caller's token when it sent one (Keystone), else its identity
    /// as noauth headers.
    pub fn of(req: &ApiRequest, caller: &Caller) -> Self {
        if let Some(token) = req.header("x-auth-token").map(str::trim) {
            let digest = Sha256::digest(token.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            return Credentials {
                key: format!("token:{hex}"),
                headers: vec![("x-auth-token".into(), token.to_string())],
            };
        }
        let project = caller.project_id.clone().unwrap_or_default();
        let user = caller.user_id.clone().unwrap_or_default();
        let roles = caller.roles.join(",");
        Credentials {
            key: format!("noauth:{project}|{user}|{roles}"),
            headers: vec![
                ("x-project-id".into(), project),
                ("x-user-id".into(), user),
                ("x-roles".into(), roles),
            ],
        }
    }
}

/// The upstream Glance of an edge site.
pub(crate) struct Upstream<'a> {
    url: &'a str,
    ttl: i64,
    http: Rc<dyn HttpClient>,
    views: CacheRepo<'a>,
}

impl<'a> Upstream<'a> {
    /// The upstream at `url` (an origin), trusted for `ttl` seconds.
    pub fn new(url: &'a str, ttl: i64, http: Rc<dyn HttpClient>, db: &'a dyn Database) -> Self {
        Upstream {
            url,
            ttl,
            http,
            views: CacheRepo::new(db),
        }
    }

    /// The record of image `id` as the upstream shows it to `creds`, if it
    /// does (None: 404 there, or not visible).
    pub fn image(&self, creds: &Credentials, id: &str) -> ApiResult<Option<Value>> {
        let now = Timestamp::now().0;
        if let Some((record, at)) = self.views.view(&creds.key, id)? {
            if now - at < self.ttl {
                if let Ok(v) = serde_json::from_str(&record) {
                    return Ok(Some(v));
                }
            }
        }
        let mut resp = send_idempotent(
            self.http.as_ref(),
            OutRequest {
                method: http::Method::GET,
                url: format!("{}/v2/images/{}", self.url, encode(id)),
                headers: creds.headers.clone(),
                body: Vec::new(),
            },
        )
        .map_err(|e| ApiError::unavailable("The upstream image service is not reachable.", e))?;
        match resp.status {
            200 => {
                let text = resp
                    .read_text(RECORD_LIMIT)
                    .map_err(|e| ApiError::unavailable("The upstream image service failed.", e))?;
                let record: Value = serde_json::from_str(&text)
                    .map_err(|e| ApiError::unavailable("The upstream image service failed.", e))?;
                if record["id"].as_str() != Some(id) {
                    return Err(ApiError::unavailable(
                        "The upstream image service failed.",
                        "the upstream answered with another image",
                    ));
                }
                self.views.save_view(&creds.key, id, &text, now)?;
                Ok(Some(record))
            }
            403 | 404 => {
                self.views.forget_view(&creds.key, id)?;
                Ok(None)
            }
            401 => Err(ApiError::unauthorized(
                "The upstream image service did not accept the credentials.",
            )),
            status => Err(ApiError::unavailable(
                "The upstream image service failed.",
                format!("GET image {id}: HTTP {status}"),
            )),
        }
    }
}

/// Streams the data of upstream image `id` (or `range` of it) with `creds`.
pub(crate) fn data(
    http: &dyn HttpClient,
    url: &str,
    creds: &Credentials,
    id: &str,
    range: Option<ByteRange>,
) -> Result<ChunkStream, BlobError> {
    let mut headers = creds.headers.clone();
    if let Some(r) = range {
        headers.push(("range".into(), format!("bytes={}-{}", r.first, r.last)));
    }
    let resp = send_idempotent(
        http,
        OutRequest {
            method: http::Method::GET,
            url: format!("{url}/v2/images/{}/file", encode(id)),
            headers,
            body: Vec::new(),
        },
    )
    .map_err(|e| BlobError::Store(e.to_string()))?;
    match (resp.status, range) {
        (200, None) | (206, Some(_)) => Ok(stream_body(resp.body)),
        (204, _) => Ok(Box::new(std::iter::empty())),
        (status, _) => Err(BlobError::Missing(format!(
            "upstream image {id} data: HTTP {status}"
        ))),
    }
}

/// Ids reach here checked as UUIDs; anything else is encoded anyway.
fn encode(id: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-');
    percent_encoding::utf8_percent_encode(id, KEEP).to_string()
}
