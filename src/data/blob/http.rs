//! The `http` store (read-only): image data that stays at an external
//! http(s) URL and streams through on download. Only hosts the manifest
//! allows can be reached.

use std::rc::Rc;

use crate::data::blob::s3::stream_body;
use crate::data::blob::{BlobError, BlobStore, BlobWriter, ByteRange, ChunkStream, Location};
use crate::ports::outbound::{HttpClient, OutRequest};

/// External data behind http(s) URLs.
#[derive(Clone)]
pub struct HttpStore {
    http: Rc<dyn HttpClient>,
}

impl HttpStore {
    /// A store that fetches through `http`.
    pub fn new(http: Rc<dyn HttpClient>) -> Self {
        HttpStore { http }
    }
}

impl BlobStore for HttpStore {
    fn plan(&self, _image_id: &str) -> Result<Location, BlobError> {
        Err(BlobError::Unsupported("the http store is read-only".into()))
    }

    fn writer(&self, _at: &Location) -> Result<Box<dyn BlobWriter>, BlobError> {
        Err(BlobError::Unsupported("the http store is read-only".into()))
    }

    fn read(
        &self,
        location: &Location,
        range: Option<ByteRange>,
    ) -> Result<ChunkStream, BlobError> {
        let headers = match range {
            Some(r) => vec![("range".to_string(), format!("bytes={}-{}", r.first, r.last))],
            None => Vec::new(),
        };
        let resp = self
            .http
            .send(OutRequest {
                method: http::Method::GET,
                url: location.url.clone(),
                headers,
                body: Vec::new(),
            })
            .map_err(|e| BlobError::Store(e.to_string()))?;
        match (resp.status, range) {
            (206, Some(_)) | (200, None) => Ok(stream_body(resp.body)),
            (200, Some(r)) => {
                // The server ignored the range: skip and cut the stream ourselves.
                Ok(slice_stream(stream_body(resp.body), r))
            }
            (status, _) => Err(BlobError::Missing(format!(
                "{}: HTTP {status}",
                location.url
            ))),
        }
    }

    fn delete(&self, _location: &Location) -> Result<(), BlobError> {
        // The data is not ours to delete.
        Ok(())
    }
}

/// The bytes `range` of a whole-data stream.
fn slice_stream(inner: ChunkStream, range: ByteRange) -> ChunkStream {
    let mut offset = 0u64;
    Box::new(inner.filter_map(move |chunk| {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let start = offset;
        let end = offset + chunk.len() as u64; // exclusive
        offset = end;
        if end <= range.first || start > range.last {
            return None;
        }
        let from = range.first.saturating_sub(start) as usize;
        let to = ((range.last + 1).min(end) - start) as usize;
        Some(Ok(chunk[from..to].to_vec()))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_a_stream() {
        let chunks: Vec<std::io::Result<Vec<u8>>> = vec![
            Ok((0..10).collect()),
            Ok((10..20).collect()),
            Ok((20..30).collect()),
        ];
        let got: Vec<u8> = slice_stream(
            Box::new(chunks.into_iter()),
            ByteRange { first: 8, last: 21 },
        )
        .flat_map(|c| c.unwrap())
        .collect();
        assert_eq!(got, (8..=21).collect::<Vec<u8>>());
    }
}
