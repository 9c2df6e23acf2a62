//! The `s3` store: image data as objects in any S3-compatible object store,
//! spoken to over outbound HTTP with SigV4 signing.
//!
//! Data is buffered one part at a time (`part_size`, at least 5 MiB as S3
//! requires), so memory stays flat: an image that fits in one part is a
//! single PUT, a larger one a multipart upload, aborted on failure.

use std::io::Read;
use std::rc::Rc;

use crate::data::blob::sigv4::{self, Credentials};
use crate::data::blob::{
    BlobError, BlobStore, BlobWriter, ByteRange, ChunkStream, Location, StoreId,
};
use crate::ports::outbound::{send_idempotent, HttpClient, OutRequest, OutResponse};
use crate::timestamp::Timestamp;

/// Smallest part S3 accepts (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// How the store reaches its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `http(s)://host[:port]` of the S3 API.
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// Credentials and region.
    pub credentials: Credentials,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual hosts.
    pub path_style: bool,
    /// Multipart part size in bytes.
    pub part_size: usize,
}

/// Image data in an S3 bucket.
#[derive(Clone)]
pub struct S3Store {
    settings: Rc<S3Settings>,
    http: Rc<dyn HttpClient>,
}

fn store_err(e: impl std::fmt::Display) -> BlobError {
    BlobError::Store(e.to_string())
}

impl S3Store {
    /// The store over the bucket `settings` name.
    pub fn new(settings: S3Settings, http: Rc<dyn HttpClient>) -> Self {
        S3Store {
            settings: Rc::new(settings),
            http,
        }
    }

    /// (url, host header, canonical path) of an object key.
    fn address(&self, key: &str) -> (String, String, String) {
        let s = &self.settings;
        let (scheme, host) = s
            .endpoint
            .split_once("://")
            .unwrap_or(("https", s.endpoint.as_str()));
        let host = host.trim_end_matches('/');
        let encoded_key = sigv4::uri_encode(key, true);
        if s.path_style {
            let path = format!("/{}/{encoded_key}", sigv4::uri_encode(&s.bucket, false));
            (format!("{scheme}://{host}{path}"), host.to_string(), path)
        } else {
            let vhost = format!("{}.{host}", s.bucket);
            let path = format!("/{encoded_key}");
            (format!("{scheme}://{vhost}{path}"), vhost, path)
        }
    }

    /// Sends a signed request for `key`.
    fn call(
        &self,
        method: http::Method,
        key: &str,
        query: &[(String, String)],
        mut headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<OutResponse, BlobError> {
        let (url, host, path) = self.address(key);
        headers.push(("host".into(), host));
        let signed = sigv4::sign(
            &self.settings.credentials,
            method.as_str(),
            &path,
            query,
            &headers,
            sigv4::UNSIGNED_PAYLOAD,
            Timestamp::now(),
        );
        headers.retain(|(k, _)| k != "host");
        headers.extend(signed);
        let url = if query.is_empty() {
            url
        } else {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| {
                    if v.is_empty() && k == "uploads" {
                        k.clone()
                    } else {
                        format!(
                            "{}={}",
                            sigv4::uri_encode(k, false),
                            sigv4::uri_encode(v, false)
                        )
                    }
                })
                .collect();
            format!("{url}?{}", q.join("&"))
        };
        // Every call here is idempotent (a part or object PUT overwrites, GET,
        // DELETE, completing an upload twice).
        send_idempotent(
            self.http.as_ref(),
            OutRequest {
                method,
                url,
                headers,
                body,
            },
        )
        .map_err(store_err)
    }

    /// Calls and checks for a 2xx answer, reading the error document otherwise.
    fn call_ok(
        &self,
        method: http::Method,
        key: &str,
        query: &[(String, String)],
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<OutResponse, BlobError> {
        let mut resp = self.call(method.clone(), key, query, headers, body)?;
        if (200..300).contains(&resp.status) {
            return Ok(resp);
        }
        let text = resp.read_text(64 * 1024).unwrap_or_default();
        let code = xml_value(&text, "Code").unwrap_or_default();
        if resp.status == 404 {
            return Err(BlobError::Missing(format!("{method} {key}: {code}")));
        }
        Err(BlobError::Store(format!(
            "{method} {key}: HTTP {} {code}",
            resp.status
        )))
    }

    fn key_of(&self, location: &Location) -> Result<String, BlobError> {
        location
            .url
            .strip_prefix(&format!("s3://{}/", self.settings.bucket))
            .map(str::to_string)
            .ok_or_else(|| BlobError::Missing(format!("not an s3 location: {}", location.url)))
    }
}

/// The text of the first `<tag>…</tag>` in an XML document.
fn xml_value(doc: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = doc.find(&open)? + open.len();
    let end = doc[start..].find(&format!("</{tag}>"))? + start;
    Some(doc[start..end].to_string())
}

impl BlobStore for S3Store {
    fn plan(&self, image_id: &str) -> Result<Location, BlobError> {
        Ok(Location {
            store: StoreId::S3,
            url: format!(
                "s3://{}/{image_id}/{}",
                self.settings.bucket,
                uuid::Uuid::new_v4().simple()
            ),
            size: 0,
            chunk_size: 0,
        })
    }

    fn writer(&self, at: &Location) -> Result<Box<dyn BlobWriter>, BlobError> {
        Ok(Box::new(S3Writer {
            store: self.clone(),
            key: self.key_of(at)?,
            buf: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            size: 0,
        }))
    }

    fn read(
        &self,
        location: &Location,
        range: Option<ByteRange>,
    ) -> Result<ChunkStream, BlobError> {
        let key = self.key_of(location)?;
        let headers = match range {
            Some(r) => vec![("range".to_string(), format!("bytes={}-{}", r.first, r.last))],
            None => Vec::new(),
        };
        let resp = self.call_ok(http::Method::GET, &key, &[], headers, Vec::new())?;
        Ok(stream_body(resp.body))
    }

    fn delete(&self, location: &Location) -> Result<(), BlobError> {
        let key = self.key_of(location)?;
        match self.call_ok(http::Method::DELETE, &key, &[], Vec::new(), Vec::new()) {
            Ok(_) | Err(BlobError::Missing(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// An abandoned write may have left a multipart upload (its parts hold
    /// bytes) or, if it got that far, the object: both go.
    fn reclaim(&self, at: &Location, _reserved: u64) -> Result<(), BlobError> {
        let key = self.key_of(at)?;
        let mut resp = self.call_ok(
            http::Method::GET,
            "",
            &[
                ("prefix".into(), key.clone()),
                ("uploads".into(), String::new()),
            ],
            Vec::new(),
            Vec::new(),
        )?;
        let listing = resp.read_text(1 << 20).map_err(store_err)?;
        for upload in listing.split("<Upload>").skip(1) {
            let (Some(k), Some(id)) = (xml_value(upload, "Key"), xml_value(upload, "UploadId"))
            else {
                continue;
            };
            if k != key {
                continue;
            }
            match self.call_ok(
                http::Method::DELETE,
                &key,
                &[("uploadId".into(), id)],
                Vec::new(),
                Vec::new(),
            ) {
                Ok(_) | Err(BlobError::Missing(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.delete(at)
    }
}

/// Turns a streaming body into chunks of about 1 MiB.
pub fn stream_body(mut body: Box<dyn Read>) -> ChunkStream {
    Box::new(std::iter::from_fn(move || {
        let mut buf = vec![0u8; 1 << 20];
        match crate::data::receive::read_some(&mut body, &mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some(Ok(buf))
            }
            Err(e) => Some(Err(e)),
        }
    }))
}

struct S3Writer {
    store: S3Store,
    key: String,
    buf: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<String>,
    size: u64,
}

impl S3Writer {
    fn part_size(&self) -> usize {
        self.store.settings.part_size.max(MIN_PART_SIZE)
    }

    fn start_multipart(&mut self) -> Result<String, BlobError> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let mut resp = self.store.call_ok(
            http::Method::POST,
            &self.key,
            &[("uploads".into(), String::new())],
            Vec::new(),
            Vec::new(),
        )?;
        let doc = resp.read_text(64 * 1024).map_err(store_err)?;
        let id = xml_value(&doc, "UploadId")
            .ok_or_else(|| BlobError::Store("CreateMultipartUpload: no UploadId".into()))?;
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    fn send_part(&mut self) -> Result<(), BlobError> {
        let upload_id = self.start_multipart()?;
        let number = self.parts.len() + 1;
        let body = std::mem::take(&mut self.buf);
        let resp = self.store.call_ok(
            http::Method::PUT,
            &self.key,
            &[
                ("partNumber".into(), number.to_string()),
                ("uploadId".into(), upload_id),
            ],
            vec![("content-length".into(), body.len().to_string())],
            body,
        )?;
        let etag = resp
            .header("etag")
            .ok_or_else(|| BlobError::Store("UploadPart: no ETag".into()))?
            .to_string();
        self.parts.push(etag);
        Ok(())
    }

    fn complete(&mut self) -> Result<(), BlobError> {
        if self.upload_id.is_none() {
            let body = std::mem::take(&mut self.buf);
            self.store.call_ok(
                http::Method::PUT,
                &self.key,
                &[],
                vec![("content-length".into(), body.len().to_string())],
                body,
            )?;
            return Ok(());
        }
        if !self.buf.is_empty() {
            self.send_part()?;
        }
        let upload_id = self.start_multipart()?;
        let mut doc = String::from("<CompleteMultipartUpload>");
        for (i, etag) in self.parts.iter().enumerate() {
            doc.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                etag.replace('&', "&amp;").replace('<', "&lt;")
            ));
        }
        doc.push_str("</CompleteMultipartUpload>");
        let mut resp = self.store.call_ok(
            http::Method::POST,
            &self.key,
            &[("uploadId".into(), upload_id)],
            vec![
                ("content-type".into(), "application/xml".into()),
                ("content-length".into(), doc.len().to_string()),
            ],
            doc.into_bytes(),
        )?;
        // S3 may answer 200 with an error document.
        let text = resp.read_text(64 * 1024).map_err(store_err)?;
        if text.contains("<Error>") {
            return Err(BlobError::Store(format!(
                "CompleteMultipartUpload: {}",
                xml_value(&text, "Code").unwrap_or_default()
            )));
        }
        Ok(())
    }
}

impl BlobWriter for S3Writer {
    fn write(&mut self, mut data: &[u8]) -> Result<(), BlobError> {
        self.size += data.len() as u64;
        let part = self.part_size();
        while !data.is_empty() {
            // A full part is sent only once more data follows, so an image of
            // exactly one part stays a single PUT.
            if self.buf.len() == part {
                self.send_part()?;
            }
            if self.buf.capacity() < part {
                self.buf.reserve_exact(part - self.buf.len());
            }
            let take = (part - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Location, BlobError> {
        if let Err(e) = self.complete() {
            self.abort();
            return Err(e);
        }
        Ok(Location {
            store: StoreId::S3,
            url: format!("s3://{}/{}", self.store.settings.bucket, self.key),
            size: self.size,
            chunk_size: 0,
        })
    }

    fn abort(self: Box<Self>) {
        if let Some(id) = &self.upload_id {
            // Best effort: the bucket's lifecycle rule for incomplete
            // multipart uploads is the backstop when the abort fails too.
            let _ = self.store.call(
                http::Method::DELETE,
                &self.key,
                &[("uploadId".into(), id.clone())],
                Vec::new(),
                Vec::new(),
            );
        }
    }
}

#[cfg(test)]
mod tests;
