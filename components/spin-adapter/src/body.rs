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
///
/// A body already in memory that the host stream accepts in one write (every
/// JSON answer) is written and finished *before* the response is handed over.
/// Spin starts writing the response head to the socket as soon as `out.set`
/// returns; a body written after that races it, and when the head wins it goes
/// out in a segment of its own and the body waits behind Nagle's algorithm for
/// the client's delayed ACK (about 40 ms: Spin does not set TCP_NODELAY).
/// Written first, head and body leave in one `writev`.
pub fn write_body(out: ResponseOutparam, response: OutgoingResponse, body: Body) {
    let Ok(outgoing) = response.body() else {
        out.set(response);
        return;
    };
    let Ok(mut stream) = outgoing.write() else {
        out.set(response);
        return;
    };
    let rest = match body {
        Body::Empty => None,
        Body::Bytes(bytes) => match stream.check_write() {
            Ok(n) if n >= bytes.len() as u64 => {
                let written = stream.write(&bytes).is_ok();
                drop(stream);
                // A failed write leaves the body unfinished: a broken transfer.
                if written {
                    let _ = OutgoingBody::finish(outgoing, None);
                }
                out.set(response);
                return;
            }
            _ => Some(Body::Bytes(bytes)),
        },
        b => Some(b),
    };
    let Some(rest) = rest else {
        drop(stream);
        let _ = OutgoingBody::finish(outgoing, None);
        out.set(response);
        return;
    };
    out.set(response);
    let complete = write_all(&mut stream, rest);
    drop(stream);
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
