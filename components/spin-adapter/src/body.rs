//! Streaming request and response bodies over `wasi:io` streams.

use std::io::{Read, Write};

use glance_core::api::Body;
use spin_sdk::http::{IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use spin_sdk::wit::wasi::http0_2_0::types::IncomingBody;
use wasi::io::streams::{InputStream, OutputStream};

/// The request body as `std::io::Read`, read straight from the host stream.
pub struct RequestBody {
    // Field order matters: the stream must be dropped before its body.
    stream: Option<InputStream>,
    _body: Option<IncomingBody>,
}

impl RequestBody {
    /// Takes the body of `req` (empty if it was already taken).
    pub fn new(req: &IncomingRequest) -> Self {
        let body = req.consume().ok();
        let stream = body.as_ref().and_then(|b| b.stream().ok());
        RequestBody {
            stream,
            _body: body,
        }
    }
}

impl Read for RequestBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.stream {
            Some(s) => Read::read(s, buf),
            None => Ok(0),
        }
    }
}

/// Sends `response` through `out`, then writes `body` into it and finishes it.
/// A body that fails midway is abandoned unfinished, so the client sees a
/// broken transfer instead of a short one that looks complete.
pub fn write_body(out: ResponseOutparam, response: OutgoingResponse, body: Body) {
    let outgoing = response.body();
    out.set(response);
    let Ok(outgoing) = outgoing else { return };
    let complete = match outgoing.write() {
        Ok(mut stream) => {
            let ok = write_all(&mut stream, body);
            drop(stream);
            ok
        }
        Err(_) => false,
    };
    if complete {
        // The client has all it will get; a failure here has no one to tell.
        let _ = OutgoingBody::finish(outgoing, None);
    }
}

fn write_all(stream: &mut OutputStream, body: Body) -> bool {
    match body {
        Body::Empty => true,
        Body::Bytes(bytes) => stream
            .write_all(&bytes)
            .and_then(|_| stream.flush())
            .is_ok(),
        Body::Stream(chunks) => {
            for chunk in chunks {
                match chunk {
                    Ok(c) => {
                        if stream.write_all(&c).is_err() {
                            return false;
                        }
                    }
                    Err(_) => return false,
                }
            }
            stream.flush().is_ok()
        }
    }
}
