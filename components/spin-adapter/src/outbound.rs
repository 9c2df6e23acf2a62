//! Outbound HTTP over `wasi:http/outgoing-handler`: the host enforces the
//! manifest's `allowed_outbound_hosts`.

use std::io::{Read, Write};

use glance_core::ports::{HttpClient, OutRequest, OutResponse, OutboundError};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    Scheme,
};
use wasi::io::streams::InputStream;

/// Sends requests through the Spin host.
pub struct SpinHttp;

fn method(m: &http::Method) -> Method {
    match *m {
        http::Method::GET => Method::Get,
        http::Method::HEAD => Method::Head,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::DELETE => Method::Delete,
        http::Method::PATCH => Method::Patch,
        http::Method::OPTIONS => Method::Options,
        ref other => Method::Other(other.to_string()),
    }
}

fn io(e: impl std::fmt::Debug) -> OutboundError {
    OutboundError::Io(format!("{e:?}"))
}

impl HttpClient for SpinHttp {
    fn send(&self, req: OutRequest) -> Result<OutResponse, OutboundError> {
        let (scheme, rest) = req
            .url
            .split_once("://")
            .ok_or_else(|| OutboundError::BadUrl(req.url.clone()))?;
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(OutboundError::BadUrl(req.url.clone())),
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path.to_string()
        };
        let entries: Vec<(String, Vec<u8>)> = req
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes()))
            .collect();
        let fields = Fields::from_list(&entries).map_err(io)?;
        let out = OutgoingRequest::new(fields);
        let set = out
            .set_method(&method(&req.method))
            .and_then(|_| out.set_scheme(Some(&scheme)))
            .and_then(|_| out.set_authority(Some(authority)))
            .and_then(|_| out.set_path_with_query(Some(&path)));
        set.map_err(|_| OutboundError::BadUrl(req.url.clone()))?;
        let body = out.body().map_err(io)?;
        let future = outgoing_handler::handle(out, None).map_err(|e| match e {
            ErrorCode::HttpRequestDenied => OutboundError::Denied(req.url.clone()),
            other => io(other),
        })?;
        // The server may answer, and close the connection, before it takes
        // the body (a redirect, an error, or a GET that has none): Spin's
        // host then closes the body's stream, and writing to it or finishing
        // it fails with `StreamError::Closed` although the answer came. So
        // an empty body is not written at all, and once there is an answer
        // it stands — unless it claims success for bytes that were never
        // handed over. Without an answer, its error says why.
        let mut taken_whole = req.body.is_empty();
        let written = if req.body.is_empty() {
            Ok(())
        } else {
            body.write().map_err(io).and_then(|mut stream| {
                stream.write_all(&req.body).map_err(io)?;
                taken_whole = true;
                stream.flush().map_err(io)
            })
        };
        if written.is_ok() || taken_whole {
            // Nothing more to say if it fails: the answer, or its error, does.
            let _ = OutgoingBody::finish(body, None);
        } else {
            // Dropped unfinished, so the host does not end it as if it were whole.
            drop(body);
        }
        let response = loop {
            if let Some(r) = future.get() {
                break r;
            }
            future.subscribe().block();
        };
        // Once the host took every byte, a flush that finds the stream closed
        // only means the host had already sent the whole body (its
        // Content-Length reached): under load that race failed an S3 part PUT
        // (16 MiB, answered 200) on all three attempts.
        if let (Err(e), Ok(Ok(answer))) = (written, &response) {
            if (200..300).contains(&answer.status()) && !taken_whole {
                return Err(e);
            }
        }
        let response = response
            .map_err(|_| OutboundError::Io("response already taken".into()))?
            .map_err(|e| match e {
                ErrorCode::HttpRequestDenied => OutboundError::Denied(req.url.clone()),
                other => io(other),
            })?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect();
        let body = response.consume().map_err(io)?;
        let stream = body.stream().map_err(io)?;
        Ok(OutResponse {
            status,
            headers,
            body: Box::new(ResponseBody {
                stream,
                _body: body,
                _response: response,
            }),
        })
    }
}

/// A response body as `Read`. Field order matters: the stream is dropped
/// before its body, the body before its response.
struct ResponseBody {
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
}

impl Read for ResponseBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Read::read(&mut self.stream, buf)
    }
}
